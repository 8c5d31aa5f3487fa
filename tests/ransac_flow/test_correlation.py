"""7x7 local correlation: channel order, zero padding, no normalisation by C."""

import jax
import jax.numpy as jnp
import numpy as np
import torch

from artdup_jax.ransac_flow import local_correlation, window_offsets
from baselines.torch.ransac_flow_fine import CorrNeigh


def correlation_loop(reference: np.ndarray, other: np.ndarray) -> np.ndarray:
    """The formula cell by cell in float64: corr[b, r, c, 7i+j] = <ref[b,r,c], other[b, r+i-3, c+j-3]>."""
    b, h, w, _ = reference.shape
    out = np.zeros((b, h, w, 49))
    for n in range(b):
        for r in range(h):
            for c in range(w):
                for i in range(7):
                    for j in range(7):
                        rr, cc = r + i - 3, c + j - 3
                        if 0 <= rr < h and 0 <= cc < w:
                            out[n, r, c, 7 * i + j] = reference[n, r, c] @ other[n, rr, cc]
    return out


def test_correlation_matches_the_cell_by_cell_formula_including_borders():
    rng = np.random.default_rng(0)
    reference, other = rng.normal(size=(2, 2, 6, 9, 5))
    got = jax.jit(local_correlation)(jnp.asarray(reference, jnp.float32), jnp.asarray(other, jnp.float32))
    np.testing.assert_allclose(np.asarray(got), correlation_loop(reference, other), atol=1e-5)


def test_channel_k_is_the_displacement_dy_major_dx_minor():
    offsets = window_offsets()
    assert offsets.shape == (49, 2)
    assert tuple(offsets[0]) == (-3, -3) and tuple(offsets[1]) == (-2, -3) and tuple(offsets[7]) == (-3, -2)
    # A one-hot feature at (row 4, col 5) of `other` lights, at the reference cell (row 2, col 6), the
    # channel of displacement dx = -1, dy = +2.
    reference = np.ones((1, 8, 8, 1), np.float32)
    other = np.zeros((1, 8, 8, 1), np.float32)
    other[0, 4, 5, 0] = 1
    corr = np.asarray(local_correlation(jnp.asarray(reference), jnp.asarray(other)))
    k = int(np.argmax(corr[0, 2, 6]))
    assert tuple(offsets[k]) == (-1, 2)
    assert k == 7 * (2 + 3) + (-1 + 3)


def test_torch_port_matches_the_formula():
    rng = np.random.default_rng(1)
    reference, other = rng.normal(size=(2, 1, 5, 7, 4)).astype(np.float32)
    got = CorrNeigh()(torch.from_numpy(reference.transpose(0, 3, 1, 2)), torch.from_numpy(other.transpose(0, 3, 1, 2)))
    np.testing.assert_allclose(got.numpy().transpose(0, 2, 3, 1), correlation_loop(reference, other), atol=1e-5)
