"""The one way the project compiles a loop (numba): the same options everywhere, and a cache only
where one can be written.

``cache=True`` keeps the compiled code beside the module, or in numba's user cache directory
(``NUMBA_CACHE_DIR``, by default ``~/.cache/numba``) when the install is read-only; where neither
can be written — a read-only install run by a user with no writable home, e.g. ``docker run
--user 1234`` — numba refuses the decorator at import. :func:`kernel` then compiles without a
cache: the server and the client still start, each process compiling anew (about a second).
:func:`maximum` and :func:`minimum` are NumPy's scalar rules for the kernels that must give its bits.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numba


def kernel(**options: Any) -> Callable[[Callable[..., Any]], Any]:
    """``numba.njit`` with the project's options — ``nogil`` (kernels run on device threads),
    ``error_model="numpy"`` (a division by zero gives inf/NaN as NumPy does, and a loop with a
    division still vectorises) — plus ``options`` (``fastmath=…``), cached where it can be."""

    def compile_(fn: Callable[..., Any]) -> Any:
        settings = {"nogil": True, "error_model": "numpy", **options}
        try:
            return numba.njit(cache=True, **settings)(fn)
        except RuntimeError:  # "cannot cache function …: no locator available for file …"
            return numba.njit(cache=False, **settings)(fn)

    return compile_


@numba.njit(inline="always")
def maximum(a, b):  # type: ignore[no-untyped-def]
    """``np.maximum`` of two scalars, in a kernel: ``a`` when ``a ≥ b`` or NaN (so ``max(−0.0, 0.0)``
    is ``−0.0``), as NumPy decides — Python's ``max`` and a plain comparison do not."""
    return a if (a >= b or a != a) else b


@numba.njit(inline="always")
def minimum(a, b):  # type: ignore[no-untyped-def]
    """``np.minimum`` of two scalars, in a kernel: ``a`` when ``a ≤ b`` or NaN."""
    return a if (a <= b or a != a) else b
