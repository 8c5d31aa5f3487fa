"""Axis-aligned resizing that reproduces torch ``F.interpolate`` and PIL ``Image.resize`` exactly.

All functions take NHWC ``(B, H, W, C)`` arrays and static output sizes. Each axis is resampled
separately with taps and weights precomputed in NumPy at trace time (mimicking the reference's own
arithmetic), then applied as gathers plus elementwise multiply-adds (no matmul, so no TF32 on GPU).
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np


def _apply_taps(x, index, weight, axis: int):
    """Sum over taps ``k`` of ``weight[:, k] * take(x, index[:, k], axis)``.

    ``index``/``weight``: NumPy ``(n_out, K)``. Looping over the (few) taps keeps memory at one
    output-sized buffer instead of a ``(n_out, K, ...)`` gather.
    """
    shape = [1] * x.ndim
    shape[axis] = index.shape[0]
    out = None
    for k in range(index.shape[1]):
        term = jnp.take(x, jnp.asarray(index[:, k], dtype=jnp.int32), axis=axis)
        if weight is not None:
            term = term * jnp.asarray(weight[:, k].reshape(shape), dtype=x.dtype)
        out = term if out is None else out + term
    return out


def _float_dtype(x):
    return jnp.result_type(x.dtype, jnp.float32)


# --------------------------------------------------------------------------------------------------
# torch F.interpolate


def _torch_linear_taps(n_in: int, n_out: int, align_corners: bool):
    """Taps of torch's (non-antialiased) linear interpolation along one axis, in float32 like torch."""
    f32 = np.float32
    if align_corners:
        scale = f32(n_in - 1) / f32(n_out - 1) if n_out > 1 else f32(0)
        src = np.arange(n_out, dtype=f32) * scale
    else:
        # HP: source position (i + 0.5) * n_in / n_out - 0.5, clamped at 0.
        scale = f32(n_in) / f32(n_out)
        src = scale * (np.arange(n_out, dtype=f32) + f32(0.5)) - f32(0.5)
        src = np.maximum(src, f32(0))
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    lam1 = np.clip(src - i0.astype(f32), f32(0), f32(1)).astype(f32)
    lam0 = (f32(1) - lam1).astype(f32)
    return np.stack([i0, i1], 1), np.stack([lam0, lam1], 1)


def resize_bilinear(image, size_hw, *, align_corners: bool):
    """``F.interpolate(mode="bilinear", align_corners=..., antialias=False)`` in NHWC.

    Args:
      image: ``(B, H, W, C)``.
      size_hw: static output ``(Ho, Wo)``.
      align_corners: False = HP (output ``i`` reads ``(i + 0.5) n_in / n_out - 0.5``, clamped to the
        image; torch's default); True = AC-resize (reads ``i (n_in - 1) / (n_out - 1)``).
    Returns:
      ``(B, Ho, Wo, C)`` floating point. No antialiasing when downsampling (as torch).
    """
    out_h, out_w = size_hw
    _, height, width, _ = image.shape
    x = image.astype(_float_dtype(image))
    index, weight = _torch_linear_taps(height, out_h, align_corners)
    x = _apply_taps(x, index, weight, axis=1)
    index, weight = _torch_linear_taps(width, out_w, align_corners)
    return _apply_taps(x, index, weight, axis=2)


def _torch_nearest_index(n_in: int, n_out: int):
    # torch: floor(i * (float)(n_in / n_out)) in float32, clamped to n_in - 1.
    scale = np.float32(n_in) / np.float32(n_out)
    src = np.floor(np.arange(n_out, dtype=np.float32) * scale).astype(np.int64)
    return np.minimum(src, n_in - 1)[:, None]


def resize_nearest_torch(image, size_hw):
    """``F.interpolate(mode="nearest")`` in NHWC: output ``i`` copies input ``floor(i * n_in / n_out)``.

    Args:
      image: ``(B, H, W, C)``, any dtype (kept).
      size_hw: static output ``(Ho, Wo)``.
    Returns:
      ``(B, Ho, Wo, C)``.
    """
    out_h, out_w = size_hw
    _, height, width, _ = image.shape
    x = _apply_taps(image, _torch_nearest_index(height, out_h), None, axis=1)
    return _apply_taps(x, _torch_nearest_index(width, out_w), None, axis=2)


# --------------------------------------------------------------------------------------------------
# PIL Image.resize


def _pil_nearest_index(n_in: int, n_out: int):
    """PIL NEAREST: input ``int((i + 0.5) * n_in / n_out)``, accumulated in double as Pillow does."""
    step = n_in / n_out
    pos = step * 0.5
    index = np.empty(n_out, dtype=np.int64)
    for i in range(n_out):  # repeated addition, not a product: this is what Pillow's ScaleAffine does
        index[i] = int(pos) if pos >= 0 else -1
        pos += step
    return np.clip(index, 0, n_in - 1)[:, None]


def _pil_bilinear_taps(n_in: int, n_out: int):
    """PIL BILINEAR taps: triangle filter widened by the downscale factor, weights normalised per output."""
    scale = n_in / n_out
    filterscale = max(scale, 1.0)
    support = 1.0 * filterscale
    ksize = int(math.ceil(support)) * 2 + 1
    index = np.zeros((n_out, ksize), dtype=np.int64)
    weight = np.zeros((n_out, ksize), dtype=np.float64)
    for i in range(n_out):
        center = (i + 0.5) * scale
        xmin = max(int(center - support + 0.5), 0)
        xmax = min(int(center + support + 0.5), n_in)
        taps = np.arange(xmin, xmax)
        w = np.maximum(0.0, 1.0 - np.abs((taps - center + 0.5) / filterscale))
        total = w.sum()
        if total != 0.0:
            w = w / total
        index[i, : len(taps)] = taps
        weight[i, : len(taps)] = w
    # Padding taps have weight 0 and read pixel 0 (always valid).
    used = int(np.max(np.count_nonzero(weight, axis=1), initial=1))
    order = np.argsort(weight == 0, axis=1, kind="stable")[:, :used]
    return (np.take_along_axis(index, order, 1),
            np.take_along_axis(weight, order, 1).astype(np.float32))


def resize_pil(image, size_hw, *, method: str):
    """PIL ``Image.resize((Wo, Ho), NEAREST | BILINEAR)`` of each channel as a float32 ("F") image.

    Args:
      image: ``(B, H, W, C)``; channels are resized independently.
      size_hw: static output ``(Ho, Wo)``.
      method: "nearest": output ``i`` copies input ``int((i + 0.5) n_in / n_out)`` (dtype kept);
        "bilinear": Pillow's separable triangle filter, widened by the scale factor when downsampling
        (i.e. antialiased), width pass first, float output. For uint8 PIL images the result is within
        1 grey level of Pillow's fixed-point output (round it yourself if integers are needed).
    Returns:
      ``(B, Ho, Wo, C)``.
    """
    out_h, out_w = size_hw
    _, height, width, _ = image.shape
    if (out_h, out_w) == (height, width):
        return image if method == "nearest" else image.astype(_float_dtype(image))
    if method == "nearest":
        x = _apply_taps(image, _pil_nearest_index(width, out_w), None, axis=2)
        return _apply_taps(x, _pil_nearest_index(height, out_h), None, axis=1)
    if method == "bilinear":
        x = image.astype(_float_dtype(image))
        if out_w != width:
            x = _apply_taps(x, *_pil_bilinear_taps(width, out_w), axis=2)
        if out_h != height:
            x = _apply_taps(x, *_pil_bilinear_taps(height, out_h), axis=1)
        return x
    raise ValueError(f"method must be 'nearest' or 'bilinear', got {method!r}")
