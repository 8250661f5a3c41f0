"""Lazy re-exports for package ``__init__`` modules: names imported on first use.

Every package that re-exports names (``idiomlens``, ``idiomlens.runs``,
``idiomlens.representations``, ...) keeps a ``{name: module}`` map and gets its
``__getattr__`` / ``__dir__`` / ``__all__`` from :func:`lazy_exports`, so importing the
package costs nothing (no torch) and the first use of a name imports its module.

>>> import types, sys
>>> pkg = types.ModuleType("demo_pkg"); sys.modules["demo_pkg"] = pkg
>>> exports = {"JSONEncoder": "json.encoder"}
>>> pkg.__getattr__, pkg.__dir__, pkg.__all__ = lazy_exports("demo_pkg", exports)
>>> import json.encoder
>>> pkg.JSONEncoder is json.encoder.JSONEncoder, "JSONEncoder" in vars(pkg), pkg.__all__
(True, True, ['JSONEncoder'])
>>> pkg.nothing
Traceback (most recent call last):
...
AttributeError: module 'demo_pkg' has no attribute 'nothing'
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["lazy_exports"]


def _import(package: str, module: str) -> Any:
    if module.startswith("."):
        return importlib.import_module(module, package)  # ".result": relative to package
    if "." in module:
        return importlib.import_module(module)  # "idiomlens.models": absolute
    return importlib.import_module(f"{package}.{module}")  # "api": a submodule


def lazy_exports(
    package: str, exports: Mapping[str, str], *, extra: Sequence[str] = ()
) -> tuple[Callable[[str], Any], Callable[[], list[str]], list[str]]:
    """``(__getattr__, __dir__, __all__)`` for ``package`` re-exporting ``exports`` lazily.

    ``exports`` maps a name to its module: absolute (``"idiomlens.models"``, any dotted
    name), relative (``".result"``) or a bare submodule name (``"api"`` is
    ``f"{package}.api"``). A resolved name is cached in the
    package's namespace. ``extra``: names defined in the package itself (``__all__``).
    """
    names = sorted(exports) + list(extra)

    def __getattr__(name: str) -> Any:  # noqa: N807 - the module protocol's name
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(_import(package, module), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:  # noqa: N807
        return names

    return __getattr__, __dir__, names
