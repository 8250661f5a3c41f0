"""Direct logit attribution: split each logit into per-component contributions."""

from .dla import attribute_components, component_labels, dla_forward, unembed_directions
from .result import DLAResult
from .runner import direct_logit_attribution, logit_diff_attribution

__all__ = [
    "direct_logit_attribution",
    "logit_diff_attribution",
    "DLAResult",
    "attribute_components",
    "component_labels",
    "dla_forward",
    "unembed_directions",
]
