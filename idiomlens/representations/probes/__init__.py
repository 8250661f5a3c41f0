"""Linear probes per layer with control tasks (METHODS.md "Probes").

- :func:`train_probes` -> :class:`ProbeResult`: every layer's probe and control probe as
  one batched L-BFGS problem (:mod:`.solver`), labels and splits from :mod:`.labels`;
- :func:`compare_probes` -> :class:`ProbeComparison` (two conditions, bootstrap CI) and
  :func:`probe_profile` -> :class:`ProbeProfile` (a list of checkpoints);
- :func:`run_probes`: cached, resumable runs over a saved representations folder
  (``idiomlens probe``, :mod:`.command`).

Names are imported lazily so that :mod:`.command` imports without torch.
"""

from __future__ import annotations

from ..._lazy import lazy_exports

_EXPORTS = {
    "train_probes": "train",
    "ProbeResult": "result",
    "compare_probes": "compare",
    "ProbeComparison": "compare",
    "probe_profile": "compare",
    "ProbeProfile": "compare",
    "run_probes": "run",
    "fit_softmax": "solver",
    "SolverConfig": "solver",
    "ProbeInputError": "labels",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
