"""grid_sample and coordinate conventions against torch (the reference implementation)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from artdup_jax.geometry.sampling import (
    cell_centres,
    grid_sample,
    identity_grid,
    normalised_to_pixel,
    pixel_to_normalised,
)

MODES = [(p, ac) for p in ("zeros", "border") for ac in (True, False)]


def _nchw(x):
    return torch.tensor(np.ascontiguousarray(np.transpose(x, (0, 3, 1, 2))))


def _nhwc(t):
    return t.detach().permute(0, 2, 3, 1).numpy()


def _random_case(seed):
    rng = np.random.default_rng(seed)
    image = rng.standard_normal((2, 7, 9, 3)).astype(np.float32)
    grid = rng.uniform(-1.5, 1.5, (2, 5, 6, 2)).astype(np.float32)  # includes out-of-range samples
    cotangent = rng.standard_normal((2, 5, 6, 3)).astype(np.float32)
    return image, grid, cotangent


@pytest.mark.parametrize("padding_mode,align_corners", MODES)
def test_grid_sample_matches_torch(padding_mode, align_corners):
    image, grid, _ = _random_case(0)
    expected = F.grid_sample(_nchw(image), torch.tensor(grid), mode="bilinear",
                             padding_mode=padding_mode, align_corners=align_corners)
    out = grid_sample(jnp.asarray(image), jnp.asarray(grid), align_corners=align_corners,
                      padding_mode=padding_mode)
    np.testing.assert_allclose(np.asarray(out), _nhwc(expected), atol=1e-5, rtol=0)


@pytest.mark.parametrize("padding_mode,align_corners", MODES)
def test_grid_sample_gradients_match_torch(padding_mode, align_corners):
    image, grid, cotangent = _random_case(1)
    t_image = _nchw(image).requires_grad_()
    t_grid = torch.tensor(grid).requires_grad_()
    t_out = F.grid_sample(t_image, t_grid, mode="bilinear", padding_mode=padding_mode,
                          align_corners=align_corners)
    (t_out * _nchw(cotangent)).sum().backward()

    def loss(img, g):
        out = grid_sample(img, g, align_corners=align_corners, padding_mode=padding_mode)
        return jnp.sum(out * cotangent)

    d_image, d_grid = jax.jit(jax.grad(loss, argnums=(0, 1)))(jnp.asarray(image), jnp.asarray(grid))
    np.testing.assert_allclose(np.asarray(d_image), _nhwc(t_image.grad), atol=1e-4, rtol=0)
    np.testing.assert_allclose(np.asarray(d_grid), t_grid.grad.numpy(), atol=1e-4, rtol=0)


@pytest.mark.parametrize("align_corners", [True, False])
def test_identity_grid_matches_torch_affine_grid(align_corners):
    theta = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])
    expected = F.affine_grid(theta, [1, 1, 5, 7], align_corners=align_corners)[0].numpy()
    np.testing.assert_allclose(np.asarray(identity_grid(5, 7, align_corners=align_corners)), expected,
                               atol=1e-6)


@pytest.mark.parametrize("align_corners", [True, False])
def test_sampling_identity_grid_returns_image(align_corners):
    image = np.random.default_rng(2).standard_normal((1, 6, 5, 2)).astype(np.float32)
    grid = identity_grid(6, 5, align_corners=align_corners)[None]
    out = grid_sample(jnp.asarray(image), grid, align_corners=align_corners)
    np.testing.assert_allclose(np.asarray(out), image, atol=1e-5)


def test_cell_centres_are_pixel_centre_coordinates():
    h, w = 3, 4
    j, i = np.meshgrid(np.arange(w), np.arange(h))
    expected = np.stack([2 * (j + 0.5) / w - 1, 2 * (i + 0.5) / h - 1], -1)
    np.testing.assert_allclose(np.asarray(cell_centres(h, w)), expected, atol=1e-6)


@pytest.mark.parametrize("align_corners", [True, False])
def test_pixel_normalised_round_trip(align_corners):
    xy = np.random.default_rng(3).uniform(-3, 40, (10, 2)).astype(np.float32)
    norm = pixel_to_normalised(jnp.asarray(xy), (31, 41), align_corners=align_corners)
    back = normalised_to_pixel(norm, (31, 41), align_corners=align_corners)
    np.testing.assert_allclose(np.asarray(back), xy, atol=1e-4)


def test_normalised_to_pixel_align_corners_maps_ends_to_corner_pixel_centres():
    ends = jnp.asarray([[-1.0, -1.0], [1.0, 1.0]])
    np.testing.assert_allclose(np.asarray(normalised_to_pixel(ends, (5, 9), align_corners=True)),
                               [[0, 0], [8, 4]])
    np.testing.assert_allclose(np.asarray(normalised_to_pixel(ends, (5, 9), align_corners=False)),
                               [[-0.5, -0.5], [8.5, 4.5]])
