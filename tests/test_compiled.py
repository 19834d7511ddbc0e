"""Compiled loops work where numba can keep no cache (a read-only install run by a user with no
writable home): the decorator falls back to compiling in memory instead of failing at import."""

from __future__ import annotations

import numba
import numpy as np
import pytest
from numba.core import caching

from device_models.compiled import kernel


def _double(a):  # type: ignore[no-untyped-def]
    out = np.empty_like(a)
    for i in range(a.size):
        out[i] = 2.0 * a[i]
    return out


def test_a_kernel_compiles_without_anywhere_to_cache(monkeypatch):
    monkeypatch.setattr(caching.CacheImpl, "_locator_classes", [])  # no directory numba may write
    with pytest.raises(RuntimeError, match="no locator"):  # what a plain cached njit does there
        numba.njit(cache=True)(_double)
    doubled = kernel()(_double)
    np.testing.assert_array_equal(doubled(np.arange(3.0)), [0.0, 2.0, 4.0])


def test_a_kernel_caches_where_it_can():
    compiled = kernel()(_double)
    assert compiled._cache.__class__.__name__ == "FunctionCache"  # (NullCache without a cache)
    np.testing.assert_array_equal(compiled(np.ones(2)), [2.0, 2.0])
