"""Fine-tune a LoRA adapter that teaches the title model (Qwen2.5-Coder-1.5B-Instruct) how podcasters
title chapters, and write it as a GGUF LoRA adapter that llama.cpp applies at run time.

    .venv/bin/python bench/title_pairs.py        # the pairs (tune halves of dev)
    .venv/bin/python -m models.title_adapter.train --pairs bench/results/title_pairs.jsonl

transformers reads the shipped Q4_K_M GGUF into a torch model (its weights stay quantised, so the
adapter learns on the very weights llama.cpp runs); a rank-`rank` LoRA on every layer's query and value
projections is trained on the answer's tokens only (the prompt is the product's own title prompt, so
what is learnt is the answer's register), one pair a step, AdamW at a constant rate. Every
`ckpt_every` steps the adapter and the optimiser are saved and the GGUF written, so a rerun resumes
where it stopped. Each pair also trains on the summary the base model writes after the creator's title
(bench/title_pairs.py), so the adapter keeps the base model's summaries while its titles change.
Nothing here imports mediaflow: the pairs come in as JSON lines ({"prompt", "target"}).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import time
from pathlib import Path

import torch
from torch import nn

BASE = Path("~/.cache/mediaflow/llm/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf")  # joined by mediaflow.llm
HERE = Path(__file__).resolve().parent


class LoRALinear(nn.Module):
    """`base(x) + (alpha / rank) * B(A(x))`: A starts random, B at zero, so training starts from the base model."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float):
        super().__init__()
        self.base, self.scale = base, alpha / rank
        self.lora_a = nn.Parameter(torch.empty(rank, base.in_features))
        self.lora_b = nn.Parameter(torch.zeros(base.out_features, rank))
        nn.init.kaiming_uniform_(self.lora_a, a=math.sqrt(5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        delta = (x.float() @ self.lora_a.T) @ self.lora_b.T
        return self.base(x) + (self.scale * delta).to(x.dtype)


def add_lora(model: nn.Module, rank: int, alpha: float, targets=("q_proj", "v_proj")) -> dict[str, LoRALinear]:
    """Wrap each target projection of each layer; returns them by GGUF tensor name (`blk.{i}.attn_q`)."""
    for p in model.parameters():
        p.requires_grad_(False)
    wrapped = {}
    for i, layer in enumerate(model.model.layers):
        for name in targets:
            lora = LoRALinear(getattr(layer.self_attn, name), rank, alpha)
            setattr(layer.self_attn, name, lora)
            wrapped[f"blk.{i}.attn_{name[0]}"] = lora
    return wrapped


def write_gguf(loras: dict[str, LoRALinear], alpha: float, path: Path) -> None:
    """The adapter as llama.cpp reads it: `<tensor>.weight.lora_a` (rank x in), `.lora_b` (out x rank)."""
    import gguf

    tmp = path.with_name(f".{path.name}.tmp")
    w = gguf.GGUFWriter(str(tmp), "qwen2")
    w.add_string("general.type", "adapter")
    w.add_string("adapter.type", "lora")
    w.add_float32("adapter.lora.alpha", float(alpha))
    for name, lora in loras.items():
        w.add_tensor(f"{name}.weight.lora_a", lora.lora_a.detach().float().numpy().copy())
        w.add_tensor(f"{name}.weight.lora_b", lora.lora_b.detach().float().numpy().copy())
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    os.replace(tmp, path)


def answer_loss(model: nn.Module, *parts: tuple[list[int], bool]) -> torch.Tensor:
    """Cross-entropy of the tokens of the parts marked True (the answers), given all before them."""
    x = torch.tensor([[t for ids, _ in parts for t in ids]])
    y = torch.tensor([[t if scored else -100 for ids, scored in parts for t in ids]])
    return model(x, labels=y).loss


def pieces(pair: dict) -> list[tuple[str, bool]]:
    """A pair as the product runs it: the title prompt, the title's line; then, when the pair has the base
    model's summary, `Summary:` and that summary's line (the product asks for it after the title)."""
    out = [(pair["prompt"], False), (pair["target"] + "\n", True)]
    if pair.get("summary"):
        out += [("Summary:", False), (" " + pair["summary"] + "\n", True)]
    return out


def order(n: int, epoch: int, seed: int) -> list[int]:
    idx = list(range(n))
    random.Random(seed * 1000 + epoch).shuffle(idx)
    return idx


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", required=True, nargs="+",
                    help="JSON lines of {prompt, target, summary} (bench/title_pairs.py)")
    ap.add_argument("--base", default=str(BASE), help="the joined GGUF the adapter is for")
    ap.add_argument("--out", default=str(HERE / "title_adapter.gguf"))
    ap.add_argument("--work", default="data/title_adapter", help="checkpoint folder (resumed from)")
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--alpha", type=float, default=16.0)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: its default)")
    ap.add_argument("--ckpt-every", type=int, default=25)
    # transformers warns that float32 is its GGUF kernels' fast path; on this CPU (AMX) a step took 5 s in
    # bfloat16 and 11 s in float32, one thread each
    ap.add_argument("--dtype", choices=("bfloat16", "float32"), default="bfloat16")
    args = ap.parse_args()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    pairs = [json.loads(line) for f in args.pairs for line in Path(f).read_text().splitlines() if line.strip()]
    pairs.sort(key=lambda p: (p["source"], p["episode"], p["chapter"]))  # the same order however they were split
    base = Path(args.base).expanduser()
    tok = AutoTokenizer.from_pretrained(base.parent, gguf_file=base.name)
    model = AutoModelForCausalLM.from_pretrained(base.parent, gguf_file=base.name, dtype=getattr(torch, args.dtype))
    model.eval()  # no dropout anywhere: the base model is frozen and the adapter has none
    loras = add_lora(model, args.rank, args.alpha)
    params = [p for lora in loras.values() for p in (lora.lora_a, lora.lora_b)]
    opt = torch.optim.AdamW(params, lr=args.lr)

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    ckpt, step = work / "adapter.pt", 0
    if ckpt.is_file():
        state = torch.load(ckpt)
        for name, lora in loras.items():
            lora.lora_a.data.copy_(state["lora"][name + ".a"])
            lora.lora_b.data.copy_(state["lora"][name + ".b"])
        opt.load_state_dict(state["opt"])
        step = state["step"]
        print(f"resumed at step {step}", flush=True)

    def save() -> None:
        state = {"step": step, "opt": opt.state_dict(), "args": vars(args),
                 "lora": {f"{n}.{k}": getattr(lora, f"lora_{k}").detach().clone()
                          for n, lora in loras.items() for k in ("a", "b")}}
        torch.save(state, work / "adapter.pt.tmp")
        os.replace(work / "adapter.pt.tmp", ckpt)
        write_gguf(loras, args.alpha, Path(args.out))

    total = math.ceil(args.epochs * len(pairs))
    t0, avg = time.time(), None
    while step < total:
        e = pairs[order(len(pairs), step // len(pairs), args.seed)[step % len(pairs)]]
        loss = answer_loss(model, *[(tok(text, add_special_tokens=False).input_ids, scored)
                                    for text, scored in pieces(e)])
        loss.backward()
        opt.step()
        opt.zero_grad()
        step += 1
        avg = loss.item() if avg is None else 0.95 * avg + 0.05 * loss.item()
        if step % args.ckpt_every == 0 or step == total:
            save()
            print(f"step {step}/{total} loss(avg) {avg:.3f} {time.time() - t0:.0f} s", flush=True)
    print(f"done: {step} steps; adapter -> {args.out}", flush=True)


if __name__ == "__main__":
    main()
