"""Representations: extraction, projections, layer geometry and probes.

Names are imported lazily (on first use), so that command-line modules below this
package (``idiomlens.representations.probes.command``) import without torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Representations": "idiomlens.representations.result",
    "train_probes": "idiomlens.representations.probes",
    "ProbeResult": "idiomlens.representations.probes",
    "compare_probes": "idiomlens.representations.probes",
    "ProbeComparison": "idiomlens.representations.probes",
    "probe_profile": "idiomlens.representations.probes",
    "ProbeProfile": "idiomlens.representations.probes",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
