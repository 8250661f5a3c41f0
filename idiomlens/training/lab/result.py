"""Trained runs as folders: write, read back, and check that a reload is stable.

A run folder is what :func:`idiomlens.models.save_hooked` writes (so
``idiomlens.load_model(folder)`` reads it) plus:

- ``lab_config.json``: the full config and the resolved ``HookedTransformerConfig`` fields;
- ``training.json``: status, config hash, final metrics, seconds, hooks used, versions;
- ``metrics.jsonl``: the history, one JSON row per recorded step;
- ``val.safetensors``: the validation split and the logits of a few validation samples,
  which :func:`verify_stable_load` compares a reload against.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from ..._io import atomic_write_json
from ...models.native import save_hooked
from .data import Split
from .history import History, history_frame
from .loop import evaluate

__all__ = ["TrainedLM", "StableLoad", "verify_stable_load", "save_run", "is_finished"]

log = logging.getLogger(__name__)
PROBE_ROWS = 8


@dataclass
class TrainedLM:
    """A trained run: ``model`` (eval mode, tokenizer attached), ``tokenizer``, its
    folder ``dir``, the ``history`` (:class:`~.history.History`), the config as a dict
    and the final ``metrics``."""

    model: Any
    tokenizer: Any
    dir: Path
    history: History
    config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return str(self.config.get("name", self.dir.name))

    def to_dataframe(self) -> History:
        """The history (one row per recorded step)."""
        return self.history

    def plot(self, metrics: Any = None, *, x: str = "step") -> Any:
        """Plotly figure of tracked ``metrics`` over ``x`` (``step``, ``samples``, ``tokens``)."""
        return self.history.plot(metrics, x=x)

    def embeddings(
        self,
        texts: Any,
        *,
        site: str = "resid_post",
        pool: str = "tokens",
        layers: Any = None,
        **kwargs: Any,
    ) -> Any:
        """The model's internal embeddings of ``texts``, per layer, via :func:`idiomlens.extract`.

        Args:
            texts: strings (ids ``text-0``, ``text-1``, ...), or a
                :class:`~idiomlens.data.texts.TextCorpus` / :class:`TextExample` items
                (their labels are kept, e.g. for probes), or an ``IdiomCorpus``.
            site, pool, layers: as in ``extract``. The default ``pool="tokens"`` gives
                one row per token after BOS (``.token_ids``, ``.positions``,
                ``.example_index``, ``.labels["token"]``); ``"last"`` / ``"mean"`` one
                row per text.
            **kwargs: other ``extract`` keywords (``out=`` to cache, ``dtype``,
                ``batch_tokens``, ``progress``, ...).

        Returns:
            :class:`~idiomlens.Representations`; ``.vectors(layer)`` is ``[row, d_model]``.

        Texts are tokenised by the run's tokenizer (a task's symbols are separated by
        spaces, e.g. ``"1 2 | 1 2"``).
        """
        from ...data.texts import TextCorpus, TextExample
        from ...representations import extract

        items = list(texts) if not isinstance(texts, str) else [texts]
        if items and all(isinstance(t, str) for t in items):
            texts = TextCorpus(
                [TextExample(f"text-{i}", t) for i, t in enumerate(items)], name=self.name
            )
        kwargs.setdefault("progress", False)
        return extract(self.model, texts, site=site, pool=pool, layers=layers, **kwargs)

    @classmethod
    def load(cls, folder: str | Path, *, device: str | None = None) -> TrainedLM:
        """Read a finished run folder."""
        from ...models.load import load_model

        folder = Path(folder)
        if not is_finished(folder):
            raise FileNotFoundError(
                f"{folder} holds no finished lab run (no training.json with status 'done')"
            )
        info = json.loads((folder / "training.json").read_text())
        config = json.loads((folder / "lab_config.json").read_text())["config"]
        rows = [
            json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines() if line
        ]
        model = load_model(folder, device=device)
        return cls(model, model.tokenizer, folder, history_frame(rows), config, info["metrics"])


def is_finished(folder: Path, key: str | None = None) -> bool:
    """Whether ``folder`` holds a finished run (of config hash ``key``, when given)."""
    path = Path(folder) / "training.json"
    if not path.is_file():
        return False
    info = json.loads(path.read_text())
    return info.get("status") == "done" and (key is None or info.get("key") == key)


def _probe_logits(model: Any, val: Split, hooks: list[Any]) -> torch.Tensor:
    tokens = val.tokens[:PROBE_ROWS].to(next(model.parameters()).device)
    with torch.no_grad(), model.hooks(fwd_hooks=hooks) if hooks else _null():
        return model(tokens[:, :-1]).float().cpu()


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: Any) -> None:
        return None


def save_run(folder: Path, model: Any, *, config: dict[str, Any], fields: dict[str, Any], key: str,
             metrics: dict[str, Any], val: Split, hooks: list[Any], extra: dict[str, Any]) -> None:  # fmt: skip
    """Write the finished run (weights, tokenizer, config, validation probe, status last)."""
    import transformer_lens

    save_hooked(model, folder)
    atomic_write_json(
        folder / "lab_config.json",
        {
            "config": config,
            "hooked_config": {
                k: str(v)
                if not isinstance(v, (int, float, str, bool, type(None), list, dict))
                else v
                for k, v in fields.items()
            },
        },
    )
    save_file(
        {
            "tokens": val.tokens,
            "loss_mask": val.loss_mask,
            "scored": val.scored,
            "probe_logits": _probe_logits(model, val, hooks),
        },
        folder / "val.safetensors",
    )
    names = [
        h[0] if isinstance(h[0], str) else getattr(h[0], "__name__", "<filter>") for h in hooks
    ]
    info = {"status": "done", "key": key, "metrics": metrics, "hooks": names,
            "versions": {"torch": torch.__version__, "transformer_lens": getattr(transformer_lens, "__version__", "?")}, **extra}  # fmt: skip
    atomic_write_json(folder / "training.json", info)


@dataclass(frozen=True)
class StableLoad:
    """Outcome of :func:`verify_stable_load`."""

    dir: Path
    recorded_val_loss: float
    reloaded_val_loss: float
    max_logit_diff: float
    deterministic: bool

    @property
    def ok(self) -> bool:
        close = abs(self.recorded_val_loss - self.reloaded_val_loss) <= 1e-5 * max(
            1.0, abs(self.recorded_val_loss)
        )
        return close and self.max_logit_diff <= 1e-4 and self.deterministic


def verify_stable_load(
    folder: str | Path, *, hooks: list[Any] | None = None, strict: bool = True
) -> StableLoad:
    """Reload a run folder with ``load_model`` and check it is the model that was saved:
    its validation loss equals the recorded final ``val_loss``, its logits on the saved
    validation probe equal those saved, and two forward passes give identical logits.

    A run trained with forward hooks needs the same ``hooks`` (they are part of its
    computation). With ``strict`` a failed check raises ``ValueError`` naming the folder.
    """
    from ...models.load import load_model

    folder = Path(folder)
    if not is_finished(folder):
        raise FileNotFoundError(f"{folder} holds no finished lab run")
    info = json.loads((folder / "training.json").read_text())
    if info.get("hooks") and not hooks:
        raise ValueError(
            f"{folder} was trained with forward hooks {info['hooks']}; pass the same hooks="
        )
    hooks = list(hooks or [])
    saved = load_file(folder / "val.safetensors")
    val = Split(saved["tokens"], saved["loss_mask"].bool(), saved["scored"].bool())
    model = load_model(folder)
    loss = evaluate(
        model,
        val,
        batch_size=int(info.get("eval_batch_size", 512)),
        hooks=hooks,
        has_accuracy=False,
    )["val_loss"]
    first, second = _probe_logits(model, val, hooks), _probe_logits(model, val, hooks)
    report = StableLoad(folder, float(info["metrics"]["val_loss"]), loss,
                        float((first - saved["probe_logits"]).abs().max()), bool(torch.equal(first, second)))  # fmt: skip
    if strict and not report.ok:
        raise ValueError(f"{folder}: the reloaded model is not the saved one: {report}")
    return report
