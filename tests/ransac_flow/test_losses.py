"""Training losses equal a PyTorch port of the official ones."""

import numpy as np
import torch

from artdup_jax.ransac_flow import losses
from baselines.torch import ransac_flow_losses as reference

RNG = np.random.default_rng(0)
B, H, W = 2, 40, 48


def _nchw(x):
    return torch.from_numpy(np.ascontiguousarray(np.transpose(x, (0, 3, 1, 2))))


def test_ssim_reconstruction_loss_matches_torch_with_partial_mask():
    x = RNG.random((B, H, W, 3), np.float32)
    y = np.clip(x + 0.1 * RNG.standard_normal((B, H, W, 3)).astype(np.float32), 0, 1)
    mask = (RNG.random((B, H, W, 1)) > 0.3).astype(np.float32)
    ours = float(losses.reconstruction_loss(x, y, mask))
    theirs = float(reference.ssim_loss(_nchw(x), _nchw(y), _nchw(mask)))
    np.testing.assert_allclose(ours, theirs, rtol=1e-5)


def test_identical_images_have_zero_reconstruction_loss():
    x = RNG.random((B, H, W, 3), np.float32)
    assert abs(float(losses.reconstruction_loss(x, x, np.ones((B, H, W, 1), np.float32)))) < 1e-5


def test_cycle_matchability_and_gradient_losses_match_torch():
    grid = RNG.uniform(-1, 1, (B, H, W, 2)).astype(np.float32)
    identity = RNG.uniform(-1, 1, (B, H, W, 2)).astype(np.float32)
    weight = RNG.random((B, H, W, 1)).astype(np.float32)
    margin = np.asarray(losses.margin_mask(B, H, 8))[:, :, :W] if H == W else np.ones((B, H, W, 1), np.float32)
    match = RNG.random((B, H, W, 1)).astype(np.float32)
    residual = RNG.standard_normal((B, H, W, 2)).astype(np.float32) * 0.05

    np.testing.assert_allclose(float(losses.cycle_loss(grid, identity, weight)),
                               float(reference.cycle_loss(torch.from_numpy(grid), torch.from_numpy(identity),
                                                          _nchw(weight))), rtol=1e-5)
    np.testing.assert_allclose(float(losses.matchability_loss(match, margin)),
                               float(reference.matchability_loss(_nchw(match), _nchw(margin))), rtol=1e-5)
    np.testing.assert_allclose(float(losses.gradient_loss(residual, match, margin)),
                               float(reference.gradient_loss(_nchw(residual), _nchw(match), _nchw(margin))),
                               rtol=1e-5)


def test_margin_mask_covers_the_central_square():
    mask = np.asarray(losses.margin_mask(1, 224, 88))[0, :, :, 0]
    assert mask.sum() == 48 * 48 and mask[88, 88] == 1 and mask[87, 88] == 0 and mask[135, 135] == 1


def test_gradient_loss_has_finite_gradients_at_a_constant_flow():
    """A zero-initialised flow head gives a constant residual: sqrt's slope at 0 must not turn the gradient into
    NaN (it used to, from the first step of stage-3 training, even with the gradient term's weight at 0)."""
    import jax
    import jax.numpy as jnp

    residual = jnp.zeros((B, H, H, 2), jnp.float32)
    matchability = jnp.full((B, H, H, 1), 0.5, jnp.float32)
    margin = losses.margin_mask(B, H, 4)
    grad = jax.grad(lambda r: 0.0 * losses.gradient_loss(r, matchability, margin))(residual)
    assert np.all(np.isfinite(np.asarray(grad)))
    grad = jax.grad(lambda r: losses.gradient_loss(r, matchability, margin))(residual.at[:, 5, 5, 0].set(0.1))
    assert np.all(np.isfinite(np.asarray(grad))) and np.abs(np.asarray(grad)).max() > 0
