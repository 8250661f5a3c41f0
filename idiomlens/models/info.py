"""Where a loaded model came from and how its weights were processed.

``HookedTransformerConfig`` has no room for provenance, so :func:`load_model` records a
small frozen :class:`ModelInfo` for every model it returns, in a module-level
``WeakKeyDictionary`` keyed by the model object (the record disappears with the model
and never keeps it alive). Read it back with :func:`model_info`.

>>> from idiomlens.models import load_model, tiny_model
>>> info = model_info(load_model(tiny_model()))
>>> info.kind, info.processing is None
('in_memory', True)
"""

from __future__ import annotations

import dataclasses
import weakref
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "Processing",
    "ModelInfo",
    "model_info",
    "record_info",
    "DEFAULT_PROCESSING",
    "NO_PROCESSING",
]

SourceKind = Literal[
    "in_memory", "demo", "hooked_dir", "transformer_lens", "hf_checkpoint", "peft_adapter"
]


@dataclass(frozen=True, kw_only=True)
class Processing:
    """The weight-processing flags of ``HookedTransformer.load_and_process_state_dict``.

    The defaults are ``HookedTransformer.from_pretrained``'s. None of them changes the
    model's log-probs; they change what individual components read and write:

    - ``fold_ln``: LayerNorm/RMSNorm weights (and LN biases) are folded into the next
      linear maps, the norms become ``LNPre``/``RMSPre`` (centre and scale only);
    - ``center_writing_weights``: every matrix writing to the residual stream has zero
      mean over ``d_model`` (LayerNorm models only; TransformerLens skips it for RMSNorm);
    - ``center_unembed``: ``W_U`` has zero mean over the vocabulary (logits shift by a
      constant per position);
    - ``fold_value_biases``: ``b_V`` is folded into ``b_O`` (so a head's output ``z @ W_O``
      carries no bias);
    - ``refactor_factored_attn_matrices``: ``W_Q W_K^T`` and ``W_V W_O`` re-balanced.
    """

    fold_ln: bool = True
    center_writing_weights: bool = True
    center_unembed: bool = True
    fold_value_biases: bool = True
    refactor_factored_attn_matrices: bool = False

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            if not isinstance(getattr(self, field.name), bool):
                raise TypeError(f"Processing.{field.name} must be a bool")

    def as_kwargs(self) -> dict[str, bool]:
        """The flags as keyword arguments of ``load_and_process_state_dict``."""
        return dataclasses.asdict(self)


#: ``HookedTransformer.from_pretrained``'s defaults (what :func:`load_model` applies).
DEFAULT_PROCESSING = Processing()
#: Raw weights, as ``HookedTransformer.from_pretrained_no_processing``.
NO_PROCESSING = Processing(
    fold_ln=False, center_writing_weights=False, center_unembed=False, fold_value_biases=False
)


@dataclass(frozen=True, kw_only=True)
class ModelInfo:
    """Provenance of a model returned by :func:`~idiomlens.models.load_model`.

    - ``source``: what was passed (a name, or the resolved directory as a string);
    - ``kind``: ``in_memory`` (a HookedTransformer passed in), ``demo``, ``hooked_dir``
      (a folder written by ``save_hooked``), ``transformer_lens`` (an official name),
      ``hf_checkpoint`` (a local Hugging Face directory) or ``peft_adapter``;
    - ``architecture``: the Hugging Face architecture (``LlamaForCausalLM``), if known;
    - ``processing``: the flags applied on load, ``None`` when weights were taken as they
      were (in-memory models and saved folders are never re-processed);
    - ``base`` / ``adapter_type``: for adapters, the base checkpoint directory and the
      PEFT type (``LORA``, ``IA3``) that was merged into it;
    - ``weights_format``: ``safetensors`` or ``pytorch_bin`` for checkpoint directories.

    The dtype and device are not recorded: ``model.cfg`` has them, and they can change.
    """

    source: str
    kind: SourceKind
    architecture: str | None = None
    processing: Processing | None = None
    base: str | None = None
    adapter_type: str | None = None
    weights_format: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able view (``processing`` as a dict of flags)."""
        return dataclasses.asdict(self)


_INFO: weakref.WeakKeyDictionary[Any, ModelInfo] = weakref.WeakKeyDictionary()


def record_info(model: Any, info: ModelInfo) -> None:
    """Attach ``info`` to ``model`` (replacing any earlier record)."""
    _INFO[model] = info


def model_info(model: Any) -> ModelInfo:
    """The :class:`ModelInfo` recorded when ``model`` was loaded.

    A model that never went through :func:`~idiomlens.models.load_model` gets an
    ``in_memory`` record with unknown processing (``processing=None``).
    """
    info = _INFO.get(model)
    if info is not None:
        return info
    name = getattr(getattr(model, "cfg", None), "model_name", None)
    return ModelInfo(source=name or type(model).__name__, kind="in_memory")
