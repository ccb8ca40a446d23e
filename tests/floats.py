"""Comparing computed floats: a tolerance scaled to the reference's magnitude.

Two computations of the same float32 values agree to a few units in the last place of the
numbers they pass through, not to a fixed absolute number: rounding differs between CPUs and
kernels (oneDNN vs MKL, AVX2 vs AVX-512, fused vs three matmuls, packed vs padded). Logits of
size ~4 that agree to 1e-5 on one machine differ by 1.2e-5 on the next, so an absolute-only
tolerance (``rtol=0``) that held where the test was written fails elsewhere.

``assert_close`` compares each tensor's largest difference with ``tol * max(1, max|expected|)``:
relative to the reference's scale, and never tighter than ``tol`` for values below 1 (their
rounding comes from the ~1-sized hidden states they were computed through). Where bits are
promised (weights copied, converted, round-tripped through a file) tests use ``torch.equal``
instead, never this.
"""
from __future__ import annotations

import math

import numpy as np
import torch


def flat(value) -> list:
    """Nested tuples / lists (a model's outputs, encoded layers) -> a flat list of leaves."""
    if isinstance(value, (tuple, list)):
        return [leaf for item in value for leaf in flat(item)]
    return [value]


def _as_tensor(value) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    return torch.as_tensor(np.asarray(value))


def scale_of(expected) -> float:
    """max(1, max|expected|): what a float tolerance is multiplied by."""
    t = _as_tensor(expected)
    if t.numel() == 0 or not t.is_floating_point():
        return 1.0
    return max(1.0, float(t.double().abs().max()))


def max_diff(actual, expected) -> float:
    """The largest absolute difference between two tensors or arrays of one shape."""
    a, e = _as_tensor(actual), _as_tensor(expected)
    if a.numel() == 0:
        return 0.0
    return float((a.double() - e.double()).abs().max())


def assert_close(actual, expected, tol: float = 1e-5, what: str = "") -> None:
    """Each leaf of ``actual`` has the shape of ``expected``'s and differs from it by at most
    ``tol * max(1, max|expected|)``; integer leaves must be equal. Leaves may be tensors, numpy
    arrays or numbers, nested in tuples and lists."""
    got, want = flat(actual), flat(expected)
    label = f"{what}: " if what else ""
    assert len(got) == len(want), f"{label}{len(got)} outputs, expected {len(want)}"
    for i, (g, w) in enumerate(zip(got, want)):
        g, w = _as_tensor(g), _as_tensor(w)
        where = f"{label}output {i}" if len(want) > 1 else (what or "output")
        assert tuple(g.shape) == tuple(w.shape), f"{where}: shape {tuple(g.shape)} != {tuple(w.shape)}"
        if not (g.is_floating_point() or w.is_floating_point()):
            assert torch.equal(g, w), f"{where}: integer values differ"
            continue
        assert not (g.isnan() ^ w.isnan()).any(), f"{where}: NaN where the other has a number"
        diff, limit = max_diff(g.nan_to_num(), w.nan_to_num()), tol * scale_of(w.nan_to_num())
        assert math.isfinite(diff) and diff <= limit, (
            f"{where}: largest difference {diff:.3g} > {limit:.3g} "
            f"(tol {tol:g} x scale {scale_of(w.nan_to_num()):.3g})")
