"""Resizing against torch F.interpolate and PIL Image.resize."""

import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from artdup_jax.geometry.resize import resize_bilinear, resize_nearest_torch, resize_pil

# (in_h, in_w, out_h, out_w): upsampling, downsampling, mixed, non-integer and integer factors.
SIZES = [(7, 9, 15, 20), (31, 29, 8, 5), (10, 6, 3, 13), (10, 10, 6, 6), (5, 4, 10, 8)]


def _image(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _torch_resize(image, size, **kwargs):
    t = torch.tensor(np.ascontiguousarray(image.transpose(0, 3, 1, 2)))
    return F.interpolate(t, size=size, **kwargs).permute(0, 2, 3, 1).numpy()


@pytest.mark.parametrize("align_corners", [True, False])
@pytest.mark.parametrize("in_h,in_w,out_h,out_w", SIZES)
def test_resize_bilinear_matches_torch_interpolate(in_h, in_w, out_h, out_w, align_corners):
    image = _image((2, in_h, in_w, 3))
    expected = _torch_resize(image, (out_h, out_w), mode="bilinear", align_corners=align_corners)
    out = resize_bilinear(jnp.asarray(image), (out_h, out_w), align_corners=align_corners)
    np.testing.assert_allclose(np.asarray(out), expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("in_h,in_w,out_h,out_w", SIZES)
def test_resize_nearest_torch_matches_torch_interpolate(in_h, in_w, out_h, out_w):
    image = _image((1, in_h, in_w, 2))
    expected = _torch_resize(image, (out_h, out_w), mode="nearest")
    np.testing.assert_array_equal(np.asarray(resize_nearest_torch(jnp.asarray(image), (out_h, out_w))),
                                  expected)


def _pil_resize_float(image, size_hw, resample):
    out_h, out_w = size_hw
    return np.stack([
        np.stack([np.asarray(Image.fromarray(im[:, :, c], mode="F").resize((out_w, out_h), resample))
                  for c in range(im.shape[-1])], -1)
        for im in image])


@pytest.mark.parametrize("method,resample", [("nearest", Image.NEAREST), ("bilinear", Image.BILINEAR)])
@pytest.mark.parametrize("in_h,in_w,out_h,out_w", SIZES + [(480, 360, 30, 30), (7, 9, 7, 4)])
def test_resize_pil_matches_pil_float_images(in_h, in_w, out_h, out_w, method, resample):
    image = _image((1, in_h, in_w, 2))
    expected = _pil_resize_float(image, (out_h, out_w), resample)
    out = resize_pil(jnp.asarray(image), (out_h, out_w), method=method)
    np.testing.assert_allclose(np.asarray(out), expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("method,resample", [("nearest", Image.NEAREST), ("bilinear", Image.BILINEAR)])
def test_resize_pil_on_uint8_rgb_within_one_grey_level(method, resample):
    rgb = np.random.default_rng(1).integers(0, 256, (50, 70, 3), dtype=np.uint8)
    expected = np.asarray(Image.fromarray(rgb).resize((23, 17), resample)).astype(np.int32)
    out = resize_pil(jnp.asarray(rgb[None], jnp.float32), (17, 23), method=method)[0]
    out = np.clip(np.round(np.asarray(out)), 0, 255).astype(np.int32)
    assert np.abs(out - expected).max() <= 1
