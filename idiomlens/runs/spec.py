"""Run specs: what was computed, from which weights, data and parameters.

A :class:`RunSpec` names everything a result depends on (the analysis, its canonicalised
parameters, the model's identity including a hash of its weights, the corpus content
hash and the library version) and derives a stable content ``key`` from it: the SHA-256
of the spec's canonical JSON. The result store serves a saved result only for the
same key, so a changed model, corpus or parameter is never served an old result.

Execution settings that do not change *what* is computed (device, ``batch_tokens``,
``chunk_size``, progress bars, the number of processes) are not part of the key.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import math
import weakref
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

import torch

__all__ = [
    "RunSpec",
    "canonicalize",
    "canonical_json",
    "weights_fingerprint",
    "tokenizer_fingerprint",
    "model_identity",
]

#: Bytes hashed per slice when streaming a tensor (bounds the host copy of GPU weights).
_SLICE_BYTES = 64 * 2**20
#: Config fields that describe where a model lives, not what it computes.
# Not part of a model's identity: where it runs, and names (a folder name is not a weight).
_CFG_IGNORED = {
    "device",
    "n_devices",
    "dtype",
    "seed",
    "checkpoint_index",
    "checkpoint_value",
    "model_name",
    "tokenizer_name",
}

_fingerprint_cache: weakref.WeakKeyDictionary[torch.nn.Module, tuple[tuple, str]] = (
    weakref.WeakKeyDictionary()
)


def canonicalize(value: Any, *, where: str = "params") -> Any:
    """Turn ``value`` into plain JSON data with a single spelling.

    Tuples become lists, dict keys are sorted strings, paths and dtypes become strings,
    dataclasses become dicts and enums their values. Anything else that is not JSON
    raises ``TypeError`` naming the offending entry.

    >>> canonicalize({"b": (1, 2), "a": torch.float32})
    {'a': 'torch.float32', 'b': [1, 2]}
    """
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise TypeError(f"{where}: non-finite float {value!r} cannot be part of a run spec")
        return value
    if isinstance(value, enum.Enum):
        return canonicalize(value.value, where=where)
    if isinstance(value, (PurePath, torch.dtype, torch.device)):
        return str(value)
    if callable(getattr(value, "content_hash", None)):  # a corpus, e.g. ablation's reference
        return {"__corpus_sha256__": value.content_hash()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        return {"__type__": type(value).__name__, **canonicalize(fields, where=where)}
    if isinstance(value, dict):
        out = {}
        for k in sorted(value, key=str):
            out[str(k)] = canonicalize(value[k], where=f"{where}.{k}")
        return out
    if isinstance(value, (list, tuple)):
        return [canonicalize(v, where=f"{where}[{i}]") for i, v in enumerate(value)]
    raise TypeError(
        f"{where}: a {type(value).__name__} cannot be part of a run spec "
        "(use JSON data: numbers, strings, lists, dicts, dataclasses of these)"
    )


def canonical_json(value: Any) -> str:
    """Compact JSON with sorted keys of :func:`canonicalize` ``(value)``."""
    return json.dumps(canonicalize(value), sort_keys=True, separators=(",", ":"))


def _weights_signature(model: torch.nn.Module) -> tuple:
    """Cheap identity of the current weights: storage, shape and in-place version counters."""
    return tuple(
        (name, t.data_ptr(), tuple(t.shape), t.dtype, t._version)
        for name, t in model.state_dict(keep_vars=True).items()
    )


def weights_fingerprint(model: torch.nn.Module) -> str:
    """SHA-256 over the model's state dict: names, shapes, dtypes and the raw bytes.

    Tensors are streamed one at a time in slices of at most 64 MiB, so the extra host
    memory is bounded even for GPU models. Cost: one pass over all weights, about one
    second per 1-2 GB on a CPU core plus the device-to-host copy (a few seconds for a
    1B-parameter model in bfloat16). The value is cached per model object and
    recomputed whenever a tensor is replaced or modified in place (PyTorch's version
    counters), so repeated runs on the same loaded model pay this once.

    The fingerprint does not depend on the device; it does depend on the dtype.

    >>> from idiomlens.models import tiny_model
    >>> weights_fingerprint(tiny_model(seed=0)) == weights_fingerprint(tiny_model(seed=0))
    True
    """
    signature = _weights_signature(model)
    cached = _fingerprint_cache.get(model)
    if cached is not None and cached[0] == signature:
        return cached[1]
    h = hashlib.sha256()
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            h.update(json.dumps([name, list(tensor.shape), str(tensor.dtype)]).encode())
            flat = tensor.detach().reshape(-1)
            step = max(1, _SLICE_BYTES // max(1, flat.element_size()))
            for i in range(0, flat.numel(), step):
                part = flat[i : i + step].contiguous().cpu().view(torch.uint8)
                h.update(part.numpy().tobytes())
    digest = h.hexdigest()
    _fingerprint_cache[model] = (signature, digest)
    return digest


def tokenizer_fingerprint(tokenizer: Any) -> str | None:
    """SHA-256 of a fast tokenizer's full JSON definition (vocab, merges, specials)."""
    if tokenizer is None:
        return None
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        payload = backend.to_str()
    else:  # slow tokenizer: the vocabulary is what matters
        payload = json.dumps(sorted(tokenizer.get_vocab().items()))
    extra = {
        "bos": getattr(tokenizer, "bos_token", None),
        "add_bos": getattr(tokenizer, "add_bos_token", None),
    }
    return hashlib.sha256((payload + canonical_json(extra)).encode()).hexdigest()


def model_identity(model: Any, *, source: str | None = None) -> dict[str, Any]:
    """What identifies a model for caching: weights and tokenizer hashes, its config.

    ``source`` (the ``load_model`` argument, if any) is recorded for humans but is not
    what makes two models equal: two paths to the same weights give the same identity.

    This needs the loaded model. The CLI first looks a run up by the content of the
    model's *files* (:mod:`idiomlens.runs.request`), which answers a finished run
    without building the model; TransformerLens model names (``"pythia-1.4b"``) have no
    local files to hash offline, so for them the model is always loaded and this
    identity computed.
    """
    cfg = getattr(model, "cfg", None)
    cfg_dict = dict(cfg.to_dict()) if cfg is not None else {}
    cfg_dict = {k: v for k, v in cfg_dict.items() if k not in _CFG_IGNORED}
    config = json.loads(json.dumps(cfg_dict, sort_keys=True, default=str))
    return {
        "name": getattr(cfg, "model_name", type(model).__name__),
        "source": source,
        "weights_sha256": weights_fingerprint(model),
        "tokenizer_sha256": tokenizer_fingerprint(getattr(model, "tokenizer", None)),
        "config_sha256": hashlib.sha256(canonical_json(config).encode()).hexdigest(),
    }


@dataclass(frozen=True, kw_only=True)
class RunSpec:
    """Everything a run's result depends on, with a stable content :attr:`key`.

    Args:
        analysis: the analysis name (a registry name or ``module:qualname``).
        params: the analysis parameters (canonicalised on construction).
        model: :func:`model_identity` of the model.
        corpus_sha256: ``IdiomCorpus.content_hash()``.
        n_examples: the corpus size.
        library_version: ``idiomlens.__version__``.

    >>> spec = RunSpec(analysis="score", params={"kind": "idiom"}, model={"weights_sha256": "0"},
    ...                corpus_sha256="c", n_examples=3, library_version="0.1.0")
    >>> spec.key == RunSpec.from_dict(spec.to_dict()).key
    True
    """

    analysis: str
    params: dict[str, Any] = field(default_factory=dict)
    model: dict[str, Any]
    corpus_sha256: str
    n_examples: int
    library_version: str

    def __post_init__(self) -> None:
        if not self.analysis:
            raise ValueError("RunSpec.analysis must be a non-empty name")
        if self.n_examples < 0:
            raise ValueError(f"RunSpec.n_examples must be >= 0, got {self.n_examples}")
        object.__setattr__(self, "params", canonicalize(dict(self.params)))
        object.__setattr__(self, "model", canonicalize(dict(self.model), where="model"))

    def _keyed(self) -> dict[str, Any]:
        model = {k: v for k, v in self.model.items() if k not in ("source", "name")}
        return {**self.to_dict(), "model": model}

    @property
    def key(self) -> str:
        """SHA-256 of the canonical JSON of the spec (the model's source path excluded)."""
        return hashlib.sha256(canonical_json(self._keyed()).encode()).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data; :meth:`from_dict` inverts it."""
        return {
            "analysis": self.analysis,
            "params": self.params,
            "model": self.model,
            "corpus_sha256": self.corpus_sha256,
            "n_examples": self.n_examples,
            "library_version": self.library_version,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunSpec:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})
