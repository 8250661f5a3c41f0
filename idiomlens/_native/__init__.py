"""C kernels for the kNN search's per-row work, compiled at first use and loaded with ctypes.

The search's product runs in BLAS; what follows it per row (a bound from group minima,
the entries under it, the exact distances at a few ranks) is several passes over every
entry in numpy. ``knn.c`` does each in one pass over the packed triangle, without
building the rows (see :mod:`idiomlens.representations.geometry.knn`). numpy still
partitions the minima and sorts the survivors (its AVX-512 sorts beat a C one).

:func:`knn_kernels` compiles ``knn.c`` once per source, compiler and machine type with the
C compiler it finds (``$CC``, else ``cc``, ``gcc`` or ``clang``) into
``$IDIOMLENS_NATIVE_CACHE`` (default ``~/.cache/idiomlens/native``; a private temporary
folder of the process where that is not writable), about a second, and loads it; later
processes load the cached library. Without a compiler, where the build fails, or with
``IDIOMLENS_NATIVE=0``, it returns ``None`` and the search runs its numpy path, which
gives the same neighbours and values (the tests hold both to the same references);
:func:`native_status` says which and why.

The library is built with ``-O3 -ffp-contract=off`` and, with GCC on x86-64, one clone
per ISA level (x86-64-v4 / v3 / baseline) chosen when it loads (a plain build where the
compiler or C library cannot: GCC before 11, musl), so a cache shared between machines
stays valid and every machine does the same float operations.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import threading
import warnings
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["KNNKernels", "PIECE", "knn_kernels", "native_status"]

SOURCE = Path(__file__).with_name("knn.c")
FLAGS = ("-O3", "-ffp-contract=off", "-fPIC", "-shared")

#: one piece of a block's products, as ``knn.c``'s ``piece_t``: ``kind`` 0 holds
#: ``p[t * ld + q]`` for the block's row ``t`` and column ``col0 + q`` (``m`` columns),
#: kind 1 ``p[q * ld + t]``
PIECE = np.dtype(
    [("p", np.uintp), ("ld", np.int64), ("m", np.int64), ("col0", np.int64), ("kind", np.int64)]
)

_LOCK = threading.Lock()
_STATE: dict[str, Any] = {}

_P, _I = ctypes.c_void_p, ctypes.c_int64


class KNNKernels:
    """Typed calls into the loaded library (numpy arrays in, C-contiguous, right dtypes)."""

    def __init__(self, lib: ctypes.CDLL, path: Path) -> None:
        self.path = path
        self._minima = lib.group_minima
        self._minima.restype = ctypes.c_int
        self._minima.argtypes = [_P, _I, _P, _I, _I, _I, _I, _P, _P]
        self._collect = lib.collect
        self._collect.restype = None
        self._collect.argtypes = [_P, _I, _P, _I, _I, _I, _P, _I, _P, _P, _P]
        self._exact = {np.dtype(np.float32): lib.exact_f32, np.dtype(np.float64): lib.exact_f64}
        for f in self._exact.values():
            f.restype = None
            f.argtypes = [_P, _I, _P, _I, _I, _I, _P]

    @staticmethod
    def _check(**arrays: tuple[np.ndarray, Any]) -> None:
        for name, (a, dtype) in arrays.items():
            if not a.flags.c_contiguous or a.dtype != dtype:
                raise ValueError(f"{name} must be C-contiguous {np.dtype(dtype)} for the C kernels")

    def group_minima(
        self,
        pieces: np.ndarray,
        hsq: np.ndarray,
        row0: int,
        rows: int,
        size: int,
        mins: np.ndarray,
        scratch: np.ndarray,
    ) -> None:
        """``mins[t, g]``: row ``t``'s minimum over group ``g`` of the pieces' columns
        (``[rows, total]`` float32; ``scratch``: ``ceil(m / size) * rows`` floats for the
        largest kind-1 piece)."""
        f4 = np.float32
        self._check(pieces=(pieces, PIECE), hsq=(hsq, f4), mins=(mins, f4), scratch=(scratch, f4))
        transposed = pieces["m"][pieces["kind"] == 1]
        need = int((-(-transposed // size)).max(initial=0)) * rows
        if mins.shape[0] != rows or scratch.size < need:
            raise ValueError(f"mins needs {rows} rows and scratch {need} floats")
        if self._minima(
            pieces.ctypes.data, len(pieces), hsq.ctypes.data, row0, rows, size,
            mins.shape[1], mins.ctypes.data, scratch.ctypes.data,
        ):  # fmt: skip
            raise ValueError(f"mins has {mins.shape[1]} columns, not the pieces' groups")

    def collect(
        self,
        pieces: np.ndarray,
        hsq: np.ndarray,
        row0: int,
        lo: int,
        hi: int,
        bound: np.ndarray,
        values: np.ndarray,
        cols: np.ndarray,
        counts: np.ndarray,
    ) -> None:
        """The block's rows ``lo .. hi`` (of those starting at point ``row0``): their
        entries at or below ``bound[t]``, in column order, into ``values`` / ``cols``
        (``[hi - lo, cap]``; the first ``cap``), and ``counts`` (all of them)."""
        f4, i8 = np.float32, np.int64
        self._check(
            pieces=(pieces, PIECE), hsq=(hsq, f4), bound=(bound, f4), values=(values, f4),
            cols=(cols, i8), counts=(counts, i8),
        )  # fmt: skip
        if not (
            0 <= lo <= hi <= bound.size and values.shape == cols.shape
            and values.shape[0] == hi - lo and counts.size >= hi - lo
        ):  # fmt: skip
            raise ValueError("collect: rows, bound, values, cols and counts do not agree")
        self._collect(
            pieces.ctypes.data, len(pieces), hsq.ctypes.data, row0, lo, hi,
            bound.ctypes.data, values.shape[1], values.ctypes.data, cols.ctypes.data,
            counts.ctypes.data,
        )  # fmt: skip

    def exact(self, x: np.ndarray, cols: np.ndarray, start: int) -> np.ndarray:
        """``|x[start + t] - x[cols[t, c]]|`` in float64 (``x`` float32 or float64; the
        indices are not checked)."""
        x = np.ascontiguousarray(x)
        cols = np.ascontiguousarray(cols, dtype=np.int64)
        out = np.empty(cols.shape, dtype=np.float64)
        self._exact[x.dtype](
            x.ctypes.data, x.shape[1], cols.ctypes.data, cols.shape[0], cols.shape[1], start,
            out.ctypes.data,
        )  # fmt: skip
        return out


def _compiler() -> list[str] | None:
    cc = os.environ.get("CC", "").split()
    if cc and shutil.which(cc[0]):
        return cc
    for name in ("cc", "gcc", "clang"):
        if shutil.which(name):
            return [name]
    return None


def _cache_dir() -> Path:
    root = os.environ.get("IDIOMLENS_NATIVE_CACHE")
    if root:
        return Path(root)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "idiomlens" / "native"


class BuildFailed(str):
    """Why there are no kernels, when a compiler was there and failed (worth a warning)."""


def _build() -> KNNKernels | str:
    """The loaded kernels, or why there are none."""
    if os.environ.get("IDIOMLENS_NATIVE", "1").strip().lower() in ("0", "false", "no", "off"):
        return "disabled by IDIOMLENS_NATIVE"
    cc = _compiler()
    if cc is None:
        return "no C compiler found (set CC)"
    source = SOURCE.read_bytes()
    key = hashlib.sha256(
        b"\0".join([source, " ".join(cc + list(FLAGS)).encode(), platform.machine().encode()])
    ).hexdigest()[:16]
    for place in (_cache_dir(), None):
        # where the cache is not writable: a private folder of this process (a shared,
        # predictable one under /tmp would let another user plant the library)
        folder = place or Path(tempfile.mkdtemp(prefix="idiomlens-native-"))
        path = folder / f"knn-{key}.so"
        if not path.exists():
            try:
                folder.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(suffix=".so", dir=folder)
                os.close(fd)
            except OSError:
                continue  # not writable: the next folder
            error = ""
            for extra in ([], ["-DIDIOMLENS_NO_CLONES"]):  # no ifunc (musl), older GCC
                try:
                    run = subprocess.run(
                        [*cc, *FLAGS, *extra, "-o", tmp, str(SOURCE)],
                        capture_output=True, text=True, timeout=300,
                    )  # fmt: skip
                except (OSError, subprocess.TimeoutExpired) as err:
                    error = str(err)
                    continue
                if run.returncode == 0 and os.path.getsize(tmp):
                    error = ""
                    break
                error = run.stderr.strip()[-500:] or f"exit status {run.returncode}, no library"
            if error:
                os.unlink(tmp)
                return BuildFailed(f"{' '.join(cc)} failed: {error}")
            os.replace(tmp, path)  # atomic: a concurrent build gives the same file
        try:
            return KNNKernels(ctypes.CDLL(str(path)), path)
        except OSError as err:
            return f"could not load {path}: {err}"
    return "no writable cache folder"


def knn_kernels() -> KNNKernels | None:
    """The compiled kernels (built at the first call of the process), or ``None``."""
    if "kernels" not in _STATE:
        with _LOCK:
            if "kernels" not in _STATE:
                got = _build()
                _STATE["kernels"] = got if isinstance(got, KNNKernels) else None
                _STATE["why"] = f"loaded {got.path}" if isinstance(got, KNNKernels) else got
                if isinstance(got, BuildFailed):
                    warnings.warn(
                        f"idiomlens: the kNN search's C kernels did not build, so it runs "
                        f"its numpy path (same results, slower): {_STATE['why']}",
                        RuntimeWarning,
                        stacklevel=2,
                    )
    return _STATE["kernels"]


def native_status() -> str:
    """Whether the kernels are loaded (and from where), or why not.

    >>> isinstance(native_status(), str)
    True
    """
    knn_kernels()
    return str(_STATE["why"])
