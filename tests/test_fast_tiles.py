"""meta._fast: the tiled block copy (8 x 8 tiles read with masked vector loads
and transposed in registers) on every shape of block it meets, and the plain
copy the kernel falls back to where numba or LLVM cannot build the tiles."""

from __future__ import annotations

import numpy as np
import pytest

from meta import _fast
from meta.pool import pool_many

pytest.importorskip("numba")


def _ragged(m, n, seed):
    rng = np.random.default_rng(seed)
    v = rng.uniform(0.01, 1.0, size=(m, n))
    y = rng.normal(0.2, np.sqrt(v + 0.1))
    k = rng.integers(1, n + 1, size=m)
    y[np.arange(n)[None, :] >= k[:, None]] = np.nan
    return y, v


@pytest.mark.parametrize("n", range(1, 18))
def test_every_width_and_row_count_equals_the_numpy_engine(n):
    """Widths 1-17 take every tile (8, 4, 2 and the masked rest); row counts
    that are and are not multiples of 8 and of the kernel's block take the
    tiles and the plain copy of the last rows."""
    for m in (1, 7, 8, 9, 63, 513, 1030):
        y, v = _ragged(m, n, seed=m * 31 + n)
        got = pool_many(y, v, engine="numba").to_numpy()
        want = pool_many(y, v, engine="numpy").to_numpy()
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14, err_msg=f"m={m} n={n}")


@pytest.mark.parametrize("layout", ["fortran", "every other row", "every other column", "offset view"])
def test_inputs_that_are_not_c_ordered_rows_give_the_same_fits(layout):
    y, v = _ragged(200, 20, seed=5)
    want = pool_many(y[::2, ::2] if layout == "every other column" else y, v[::2, ::2] if layout == "every other column" else v,
                     engine="numpy")
    if layout == "fortran":
        yy, vv = np.asfortranarray(y), np.asfortranarray(v)
    elif layout == "every other row":
        Y, V = np.empty((400, 20)), np.empty((400, 20))
        Y[::2], V[::2] = y, v
        yy, vv = Y[::2], V[::2]
        want = pool_many(y, v, engine="numpy")
    elif layout == "every other column":
        yy, vv = y[::2, ::2], v[::2, ::2]
    else:
        Y, V = np.zeros((201, 21)), np.ones((201, 21))
        Y[1:, 1:], V[1:, 1:] = y, v
        yy, vv = Y[1:, 1:], V[1:, 1:]
    got = pool_many(yy, vv, engine="numba")
    np.testing.assert_allclose(got.to_numpy(), want.to_numpy(), rtol=1e-12, atol=1e-14)


def test_a_kernel_whose_tiles_cannot_be_built_falls_back_to_the_plain_copy(monkeypatch):
    """The first use compiles the tiled kernel and fits a small block with it; if
    that raises (an LLVM without the masked-load intrinsics' names), the kernel
    with the plain copy is used."""
    built = []

    def fake_compile(fn, numba, tiled=True, **options):
        built.append(tiled)
        return "tiled" if tiled else "plain"

    def fake_probe(fn):
        if fn == "tiled":
            raise RuntimeError("LLVM ERROR: unknown intrinsic")

    monkeypatch.setattr(_fast, "_compiled", None)
    monkeypatch.setattr(_fast, "_compile", fake_compile)
    monkeypatch.setattr(_fast, "_probe", fake_probe)
    assert _fast.kernel() == "plain" and built == [True, False]
    monkeypatch.setattr(_fast, "_compiled", None)
    monkeypatch.setattr(_fast, "_probe", lambda fn: None)
    assert _fast.kernel() == "tiled"


@pytest.mark.parametrize("lo,hi,parts", [(0, 64 * 100, 3), (40, 5000, 15), (0, 80, 15), (4096, 4096, 3), (8, 64 * 7 + 9, 4)])
@pytest.mark.parametrize("y_at,v_at", [(1 << 20, 1 << 30), ((1 << 20) + 24, (1 << 30) + 56)])
def test_the_slices_of_the_next_block_ask_for_each_of_its_cache_lines_once(lo, hi, parts, y_at, v_at):
    """The kernel asks for the next block's bytes [lo, hi) of y and of v in
    ``parts`` slices while it computes the current block: together the
    slices ask for every 64-byte line that holds those bytes, once each,
    whatever the arrays' alignment."""
    import types

    asked = []
    fn = types.FunctionType(_fast._prefetch_part.__code__, {"_prefetch": asked.append}, "_prefetch_part")
    for part in range(parts):
        fn(y_at, v_at, lo, hi, part, parts)
    for at in (y_at, v_at):
        got = sorted(a // 64 for a in asked if at <= a + 64 < at + (1 << 28))
        want = list(range((at + lo) // 64, (at + hi - 1) // 64 + 1)) if hi > lo else []
        assert got == want
    assert all(a % 64 == 0 for a in asked)


def test_the_compiled_prefetch_is_an_llvm_prefetch_and_the_plain_kernel_has_none():
    import types

    import numba

    def call(ya, va, lo, hi):
        _pp(ya, va, lo, hi, 0, 1)

    irs = {}
    for tiled in (True, False):
        glb = {"_pp": _fast._njit_globals(numba, tiled)["_prefetch_part"]}
        f = numba.njit(types.FunctionType(call.__code__, glb, "call"))
        f(0, 0, 0, 0)
        irs[tiled] = f.inspect_llvm(f.signatures[0])
    assert "call void @llvm.prefetch" in irs[True]
    assert "llvm.prefetch" not in irs[False]
