"""The English phonemiser (hibari's port of misaki) in a tenth of its memory.

    g2p = packed_g2p(british=False)       # hibari.g2p.G2P's code on packed tables: the same phonemes

hibari's `G2P` keeps its two lexicons (183k words) and its part-of-speech tagger's weights (79k features,
291k numbers) as Python dicts: about 100 MB resident, half of a process that speaks with the student,
and parsing them leaves as much again of freed but fragmented heap. `PackedG2P` runs hibari's own code
on the same tables packed into flat arrays (`PackedMap`, `PackedWeights`: about 12 MB), found by a CRC-32
of the key and bisection, so every lookup answers what the dict did.

The packed tables are made once per installation of hibari, in a child process (`python -m
mediaflow.tts.g2p BRITISH PATH`, so the speaking process never holds the parsed JSON), and kept in the TTS
cache (`MEDIAFLOW_TTS_CACHE`, else ~/.cache/mediaflow/tts) under the hash of the files they came from;
later processes read them in milliseconds. Where the cache cannot be written they are made in-process.

hibari's `g2p` package is loaded under a name of its own (`g2p_module`): importing `hibari.g2p` runs
`hibari/__init__`, which imports hibari's synthesiser and, through it, SciPy (about 27 MB and a second of
imports that the phonemiser never uses).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import struct
import subprocess
import sys
import tempfile
import zlib
from array import array
from bisect import bisect_left
from pathlib import Path
from typing import Iterable

from mediaflow.errors import DependencyMissing
from mediaflow.tts import default_cache_dir

log = logging.getLogger("mediaflow.tts.g2p")

_PACKAGE = "mediaflow_hibari_g2p"  # hibari.g2p, under a name of its own (`g2p_module`)
_MAGIC = b"mediaflow-g2p-1\n"  # the file layout's version: a change here makes every cached file stale


def g2p_module():
    """hibari's `g2p` package, loaded on its own as `_PACKAGE`: importing `hibari.g2p` would run
    `hibari/__init__` (its synthesiser, SciPy), and so does a relative import inside it while its parent
    package is not loaded. A process that also imports `hibari` holds the package twice (~1 MB of code)."""
    if _PACKAGE in sys.modules:
        return sys.modules[_PACKAGE]
    parent = importlib.util.find_spec("hibari")
    if parent is None or not parent.submodule_search_locations:
        raise DependencyMissing("the English phonemiser needs hibari-tts: pip install hibari-tts==0.2.1")
    path = os.path.join(next(iter(parent.submodule_search_locations)), "g2p")
    spec = importlib.util.spec_from_file_location(_PACKAGE, os.path.join(path, "__init__.py"),
                                                  submodule_search_locations=[path])
    module = importlib.util.module_from_spec(spec)
    sys.modules[_PACKAGE] = module  # before it runs: its relative imports look their package up here
    try:
        spec.loader.exec_module(module)
    except BaseException:
        for name in [m for m in sys.modules if m == _PACKAGE or m.startswith(_PACKAGE + ".")]:
            del sys.modules[name]
        raise
    return module


def g2p_submodule(name: str):
    """A module of hibari's `g2p` package (`normalize`, `lexicon`, ...), loaded as `g2p_module` loads it."""
    return importlib.import_module(f"{g2p_module().__name__}.{name}")


def _key_hash(raw: bytes) -> int:
    return zlib.crc32(raw)  # the same in every process (str's hash is not), so packed tables can be kept


def _ends(parts: Iterable) -> Iterable[int]:
    end = 0
    for p in parts:
        end += len(p)
        yield end


def _span(ends: array, i: int) -> tuple[int, int]:
    return (ends[i - 1] if i else 0), ends[i]


class _Index:
    """Where each str key sits: keys sorted by CRC-32, their UTF-8 bytes in one blob; `find` → row or -1."""

    def __init__(self, hashes: array, key_ends: array, keys: bytes):
        self.hashes, self.key_ends, self.keys = hashes, key_ends, keys

    @classmethod
    def of(cls, raw_keys: list[bytes]) -> "_Index":  # raw_keys already in `_by_hash` order
        return cls(array("I", map(_key_hash, raw_keys)), array("I", _ends(raw_keys)), b"".join(raw_keys))

    def find(self, key: str) -> int:
        raw = key.encode("utf-8", "surrogatepass")
        h, hashes = _key_hash(raw), self.hashes
        i = bisect_left(hashes, h)
        while i < len(hashes) and hashes[i] == h:  # more than one on a collision: compare the keys themselves
            a, b = _span(self.key_ends, i)
            if self.keys[a:b] == raw:
                return i
            i += 1
        return -1


def _by_hash(items: Iterable[tuple[str, object]]) -> list[tuple[bytes, object]]:
    rows = [(k.encode("utf-8", "surrogatepass"), v) for k, v in items]
    rows.sort(key=lambda kv: (_key_hash(kv[0]), kv[0]))
    return rows


class PackedMap:
    """A read-only `dict[str, str]` in flat arrays, `get` as `dict.get`; values that are not str (the gold
    lexicon's 790 part-of-speech entries) stay in a small dict, `other`."""

    def __init__(self, index: _Index, value_ends: array, values: bytes, other: dict):
        self.index, self.value_ends, self.values, self.other = index, value_ends, values, other

    @classmethod
    def of(cls, table: dict) -> "PackedMap":
        rows = _by_hash((k, v) for k, v in table.items() if isinstance(v, str))
        values = [v.encode() for _, v in rows]
        return cls(_Index.of([k for k, _ in rows]), array("I", _ends(values)), b"".join(values),
                   {k: v for k, v in table.items() if not isinstance(v, str)})

    def get(self, key, default=None):
        if key in self.other:
            return self.other[key]
        i = self.index.find(key) if isinstance(key, str) else -1
        if i < 0:
            return default
        a, b = _span(self.value_ends, i)
        return self.values[a:b].decode()

    def __contains__(self, key) -> bool:
        return self.get(key) is not None

    def __len__(self) -> int:
        return len(self.other) + len(self.index.hashes)


class PackedWeights:
    """The tagger's weights, feature → {tag: weight}: per feature a run of tag numbers and float64 weights
    (the very doubles JSON gave, so the tagger's sums and choices are unchanged); `get` builds the
    feature's small dict, in its original order, when asked."""

    def __init__(self, index: _Index, ends: array, tag: array, weight: array, tags: list[str]):
        self.index, self.ends, self.tag, self.weight, self.tags = index, ends, tag, weight, tags
        self.number = {t: i for i, t in enumerate(tags)}

    @classmethod
    def of(cls, weights: dict[str, dict[str, float]], tags: list[str]) -> "PackedWeights":
        tags = list(dict.fromkeys([*tags, *(t for ws in weights.values() for t in ws)]))
        number = {t: i for i, t in enumerate(tags)}
        rows = _by_hash(weights.items())
        return cls(_Index.of([f for f, _ in rows]), array("I", _ends(ws for _, ws in rows)),
                   array("B", (number[t] for _, ws in rows for t in ws)),
                   array("d", (w for _, ws in rows for w in ws.values())), tags)

    def get(self, feature, default=None):
        i = self.index.find(feature) if isinstance(feature, str) else -1
        if i < 0:
            return default
        a, b = _span(self.ends, i)
        tags = self.tags
        return {tags[t]: w for t, w in zip(self.tag[a:b], self.weight[a:b])}

    def __len__(self) -> int:
        return len(self.ends)


# -- the packed tables, kept -----------------------------------------------------------------------
def _sources(british: bool) -> list[str]:
    acc = "gb" if british else "us"
    return [f"lexicon_{acc}_gold.json.gz", f"lexicon_{acc}_silver.json.gz", "tagger.json.gz"]


def _fingerprint(british: bool) -> str:
    g2p = g2p_module()
    digest = hashlib.sha256(_MAGIC)
    for name in _sources(british):
        digest.update(Path(g2p.ASSETS, name).read_bytes())
    return digest.hexdigest()[:16]


def pack(british: bool, trim=lambda: None) -> dict:
    """Parse hibari's tables one at a time and pack each: {"gold", "silver": PackedMap, "tagger": dict with
    `weights` a PackedWeights}. `trim` is called after each (to hand freed heap back)."""
    g2p = g2p_module()
    gold_name, silver_name, tagger_name = _sources(british)
    out = {"gold": PackedMap.of(g2p._load_json(gold_name))}
    trim()
    out["silver"] = PackedMap.of(g2p._load_json(silver_name))
    trim()
    model = g2p._load_json(tagger_name)
    model["weights"] = PackedWeights.of(model["weights"], model["tags"])
    out["tagger"] = model
    trim()
    return out


def _arrays(tables: dict) -> list:
    gold, silver, w = tables["gold"], tables["silver"], tables["tagger"]["weights"]
    return [m for p in (gold, silver) for m in (p.index.hashes, p.index.key_ends, p.index.keys, p.value_ends,
                                                 p.values)] + [w.index.hashes, w.index.key_ends, w.index.keys,
                                                               w.ends, w.tag, w.weight]


def dump(tables: dict) -> bytes:
    """The packed tables as one file: magic, header length, a JSON header (the small dicts and each array's
    type and size), then the arrays' bytes."""
    model = tables["tagger"]
    parts = [bytes(a) if isinstance(a, bytes) else a.tobytes() for a in _arrays(tables)]
    header = json.dumps({
        "gold_other": tables["gold"].other, "silver_other": tables["silver"].other,
        "tagger": {k: v for k, v in model.items() if k != "weights"}, "weight_tags": model["weights"].tags,
        "arrays": [[a.typecode if isinstance(a, array) else "bytes", len(p)] for a, p in zip(_arrays(tables), parts)],
    }, ensure_ascii=False).encode()
    return _MAGIC + struct.pack("<Q", len(header)) + header + b"".join(parts)


def load(data: bytes) -> dict:
    """`dump`'s file back into tables; ValueError if it is not one."""
    if not data.startswith(_MAGIC):
        raise ValueError("not a packed phonemiser file")
    start = len(_MAGIC) + 8
    (size,) = struct.unpack("<Q", data[len(_MAGIC): start])
    header = json.loads(data[start: start + size])
    view, at, arrays = memoryview(data), start + size, []
    for typecode, n in header["arrays"]:
        chunk = view[at: at + n]
        arrays.append(bytes(chunk) if typecode == "bytes" else array(typecode, chunk.tobytes()))
        at += n
    if at != len(data):
        raise ValueError("packed phonemiser file of the wrong length")
    maps = [PackedMap(_Index(*arrays[i: i + 3]), arrays[i + 3], arrays[i + 4], header[name])
            for i, name in ((0, "gold_other"), (5, "silver_other"))]
    model = dict(header["tagger"])
    model["weights"] = PackedWeights(_Index(*arrays[10:13]), arrays[13], arrays[14], arrays[15], header["weight_tags"])
    return {"gold": maps[0], "silver": maps[1], "tagger": model}


def tables(british: bool, trim=lambda: None) -> dict:
    """The packed tables: from the cache, else made by a child process into it, else made here."""
    path = default_cache_dir() / f"g2p-{'gb' if british else 'us'}-{_fingerprint(british)}.bin"
    if not path.is_file():
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run([sys.executable, "-m", "mediaflow.tts.g2p", str(int(british)), str(path)], check=True,
                           capture_output=True, timeout=600)
        except (OSError, subprocess.SubprocessError) as exc:
            log.warning("could not keep the packed phonemiser in %s (%s); packing it in this process", path, exc)
            return pack(british, trim)
    try:
        return load(path.read_bytes())
    except (OSError, ValueError, KeyError, json.JSONDecodeError) as exc:
        log.warning("the packed phonemiser %s is unreadable (%s); packing it in this process", path, exc)
        return pack(british, trim)


def _write(british: bool, path: Path) -> None:
    data = dump(pack(british))
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)  # readers see the whole file or none (two processes may race to make it)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def packed_g2p(british: bool = False, trim=lambda: None):
    """hibari's `G2P(british=british)` on packed tables (`tables`)."""
    g2p = g2p_module()
    packed = tables(british, trim)

    class PackedTagger(g2p.Tagger):
        """hibari's tagger; `predict` sums the packed weights in place instead of building each feature's
        dict: per tag the same additions in the same order, so the same scores and the same choice."""

        def predict(self, feats):
            w = self.weights
            index, ends, tag, weight = w.index, w.ends, w.tag, w.weight
            scores, hit = [0.0] * len(w.tags), False
            for f in feats:
                i = index.find(f)
                if i >= 0:
                    a, b = _span(ends, i)
                    hit = hit or a < b
                    for j in range(a, b):
                        scores[tag[j]] += weight[j]
            if not hit:
                return "NN"
            number = w.number
            return max(self.tags, key=lambda t: (scores[number[t]] if t in number else 0, t))

    class PackedG2P(g2p.G2P):
        """hibari's G2P with its tables packed: every attribute its `__init__` sets, set to the same
        tables (tests/test_tts.py checks both give the same phonemes and have the same attributes)."""

        def __init__(self):  # as G2P.__init__(oov=None, unk="", british=british)
            self.lexicon = g2p.Lexicon(packed["gold"], packed["silver"], british)
            self.tokenizer = g2p.Tokenizer(g2p._load_json("tokenizer_exceptions.json"))
            self.tagger = PackedTagger(packed["tagger"])
            self._oov = None
            self.unk = ""
            self.british = british

    return PackedG2P()


if __name__ == "__main__":  # python -m mediaflow.tts.g2p BRITISH(0|1) PATH: what `tables` runs in a child
    _write(bool(int(sys.argv[1])), Path(sys.argv[2]))
