"""3x3 homographies: application, warp grids, normalisation changes and DLT fitting.

Points are ``(..., N, 2)`` with x (column) first; matrices are ``(..., 3, 3)`` acting on column vectors
``(x, y, 1)``. Every product is written elementwise (never ``@``) so GPU matmuls cannot drop to TF32.
Everything is jit/vmap friendly: no Python control flow on array values.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from artdup_jax.geometry.sampling import identity_grid


def apply_homography(H, xy):
    """Map points through ``H`` with a plain division by the third coordinate.

    Args:
      H: ``(..., 3, 3)``.
      xy: ``(..., N, 2)``, x first; leading dims broadcast against ``H``'s.
    Returns:
      ``(..., N, 2)``.
    """
    x, y = xy[..., 0], xy[..., 1]
    h = H[..., None, :, :]  # (..., 1, 3, 3) broadcasts over N
    u = h[..., 0, 0] * x + h[..., 0, 1] * y + h[..., 0, 2]
    v = h[..., 1, 0] * x + h[..., 1, 1] * y + h[..., 1, 2]
    z = h[..., 2, 0] * x + h[..., 2, 1] * y + h[..., 2, 2]
    return jnp.stack([u / z, v / z], axis=-1)


def homography_grid(H, height: int, width: int):
    """kornia-0.1.4-style warp grid: ``H`` applied to the AC identity grid of the target size.

    Args:
      H: ``(3, 3)`` or ``(B, 3, 3)``, mapping target-normalised to source-normalised coordinates (AC).
      height, width: target size.
    Returns:
      ``(height, width, 2)`` or ``(B, height, width, 2)``: for every target pixel, where to read the
      source, normalised [-1, 1] (AC), x first. Feed to ``grid_sample(..., align_corners=True)``.
    """
    points = identity_grid(height, width, align_corners=True, dtype=H.dtype).reshape(-1, 2)
    return apply_homography(H, points).reshape(H.shape[:-2] + (height, width, 2))


def compose(H_a, H_b):
    """``H_a @ H_b`` (apply ``H_b`` first, then ``H_a``), elementwise in full precision. ``(..., 3, 3)``."""
    return jnp.sum(H_a[..., :, :, None] * H_b[..., None, :, :], axis=-2)


def invert(H):
    """Inverse of ``(..., 3, 3)`` matrices through the adjugate (exact closed form, no LU)."""
    a, b, c = H[..., 0, 0], H[..., 0, 1], H[..., 0, 2]
    d, e, f = H[..., 1, 0], H[..., 1, 1], H[..., 1, 2]
    g, h, i = H[..., 2, 0], H[..., 2, 1], H[..., 2, 2]
    co_a, co_b, co_c = e * i - f * h, f * g - d * i, d * h - e * g
    det = a * co_a + b * co_b + c * co_c
    adj = jnp.stack([
        jnp.stack([co_a, c * h - b * i, b * f - c * e], -1),
        jnp.stack([co_b, a * i - c * g, c * d - a * f], -1),
        jnp.stack([co_c, b * g - a * h, a * e - b * d], -1),
    ], -2)
    return adj / det[..., None, None]


def normalise_scale(H):
    """Divide ``(..., 3, 3)`` by ``H[..., 2, 2]`` where it is nonzero (left unchanged otherwise)."""
    h22 = H[..., 2:3, 2:3]
    return jnp.where(h22 != 0, H / jnp.where(h22 != 0, h22, 1), H)


def _pixel_to_normalised_matrix(size_hw, align_corners: bool, dtype):
    """3x3 ``N`` with ``N (px, py, 1) = (gx, gy, 1)`` for an image of ``size_hw``."""
    height, width = size_hw
    if align_corners:
        sx, sy = 2.0 / max(width - 1, 1), 2.0 / max(height - 1, 1)
        tx, ty = -1.0, -1.0
    else:
        sx, sy = 2.0 / width, 2.0 / height
        tx, ty = 1.0 / width - 1.0, 1.0 / height - 1.0
    return jnp.asarray([[sx, 0.0, tx], [0.0, sy, ty], [0.0, 0.0, 1.0]], dtype=dtype)


def _dtype(H):
    return jnp.result_type(H, jnp.float32)


def pixel_to_normalised_homography(H_pix, src_size_hw, dst_size_hw, *, align_corners: bool):
    """Re-express a pixel homography in normalised [-1, 1] coordinates.

    Args:
      H_pix: ``(..., 3, 3)`` mapping pixel coords of an image of ``src_size_hw`` to pixel coords of an
        image of ``dst_size_hw`` (OpenCV convention: pixel ``i`` has its centre at ``i``).
      src_size_hw, dst_size_hw: ``(height, width)`` of the domain and codomain images.
      align_corners: True: AC normalisation; False: PC / half-pixel normalisation.
    Returns:
      ``(..., 3, 3)`` = ``N_dst @ H_pix @ N_src^-1``, scaled so that ``[2, 2] = 1`` where possible.
    """
    dtype = _dtype(H_pix)
    n_src = _pixel_to_normalised_matrix(src_size_hw, align_corners, dtype)
    n_dst = _pixel_to_normalised_matrix(dst_size_hw, align_corners, dtype)
    return normalise_scale(compose(n_dst, compose(H_pix.astype(dtype), invert(n_src))))


def normalised_to_pixel_homography(H_norm, src_size_hw, dst_size_hw, *, align_corners: bool):
    """Inverse of :func:`pixel_to_normalised_homography`: ``N_dst^-1 @ H_norm @ N_src``.

    ``H_norm`` ``(..., 3, 3)`` maps normalised coords of the ``src_size_hw`` image to normalised coords
    of the ``dst_size_hw`` image. For a warp grid matrix (target -> source), src is the target.
    """
    dtype = _dtype(H_norm)
    n_src = _pixel_to_normalised_matrix(src_size_hw, align_corners, dtype)
    n_dst = _pixel_to_normalised_matrix(dst_size_hw, align_corners, dtype)
    return normalise_scale(compose(invert(n_dst), compose(H_norm.astype(dtype), n_src)))


def dlt_homography(src_xy, dst_xy):
    """Homography through exactly 4 correspondences, ``h33 = 1``, via an 8x8 linear solve.

    Args:
      src_xy, dst_xy: ``(..., 4, 2)``, x first.
    Returns:
      ``(..., 3, 3)`` with ``dst ~ H src``. Degenerate samples (3 collinear points) give inf/NaN entries;
      callers (RANSAC) should reject those rather than branch here.
    """
    dtype = jnp.result_type(src_xy, dst_xy, jnp.float32)
    x, y = src_xy[..., 0].astype(dtype), src_xy[..., 1].astype(dtype)
    u, v = dst_xy[..., 0].astype(dtype), dst_xy[..., 1].astype(dtype)
    one, zero = jnp.ones_like(x), jnp.zeros_like(x)
    rows_u = jnp.stack([x, y, one, zero, zero, zero, -u * x, -u * y], -1)  # (..., 4, 8)
    rows_v = jnp.stack([zero, zero, zero, x, y, one, -v * x, -v * y], -1)
    A = jnp.concatenate([rows_u, rows_v], axis=-2)  # (..., 8, 8)
    b = jnp.concatenate([u, v], axis=-1)  # (..., 8)
    h = jnp.linalg.solve(A, b[..., None])[..., 0]
    return jnp.concatenate([h, jnp.ones_like(h[..., :1])], -1).reshape(h.shape[:-1] + (3, 3))


def _hartley_transform(xy, weights):
    """Similarity ``T`` moving the weighted centroid to 0 and the weighted mean distance to sqrt(2)."""
    total = jnp.maximum(jnp.sum(weights), jnp.finfo(xy.dtype).tiny)
    centre = jnp.sum(weights[:, None] * xy, axis=0) / total
    dist = jnp.sqrt(jnp.sum((xy - centre) ** 2, axis=-1))
    mean_dist = jnp.sum(weights * dist) / total
    s = jnp.sqrt(2.0).astype(xy.dtype) / jnp.maximum(mean_dist, jnp.finfo(xy.dtype).eps)
    zero = jnp.zeros_like(s)
    return jnp.stack([
        jnp.stack([s, zero, -s * centre[0]]),
        jnp.stack([zero, s, -s * centre[1]]),
        jnp.stack([zero, zero, jnp.ones_like(s)]),
    ])


def fit_homography_least_squares(src_xy, dst_xy, weights):
    """Weighted, Hartley-normalised DLT: the ``H`` minimising ``sum_i w_i |A_i h|^2`` with ``|h| = 1``.

    Args:
      src_xy, dst_xy: ``(N, 2)`` correspondences, x first.
      weights: ``(N,)`` non-negative; 0 removes a point, so a padded / masked inlier set can be refit
        under jit with a static ``N``. Needs at least 4 points of positive weight.
    Returns:
      ``(3, 3)`` with ``dst ~ H src``, scaled so that ``H[2, 2] = 1``.
    """
    dtype = jnp.result_type(src_xy, dst_xy, weights, jnp.float32)
    src_xy, dst_xy, weights = src_xy.astype(dtype), dst_xy.astype(dtype), weights.astype(dtype)
    t_src = _hartley_transform(src_xy, weights)
    t_dst = _hartley_transform(dst_xy, weights)
    p = apply_homography(t_src, src_xy)
    q = apply_homography(t_dst, dst_xy)
    x, y, u, v = p[:, 0], p[:, 1], q[:, 0], q[:, 1]
    one, zero = jnp.ones_like(x), jnp.zeros_like(x)
    rows_u = jnp.stack([x, y, one, zero, zero, zero, -u * x, -u * y, -u], -1)  # (N, 9)
    rows_v = jnp.stack([zero, zero, zero, x, y, one, -v * x, -v * y, -v], -1)
    # Normal matrix A^T W A, accumulated at full precision (TF32 would ruin the small eigenvalues).
    ata = (jnp.einsum("ni,nj->ij", rows_u * weights[:, None], rows_u,
                      precision=jax.lax.Precision.HIGHEST)
           + jnp.einsum("ni,nj->ij", rows_v * weights[:, None], rows_v,
                        precision=jax.lax.Precision.HIGHEST))
    _, eigvecs = jnp.linalg.eigh(ata)
    h_norm = eigvecs[:, 0].reshape(3, 3)  # eigenvalues ascending: smallest first
    return normalise_scale(compose(invert(t_dst), compose(h_norm, t_src)))
