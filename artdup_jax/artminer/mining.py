"""Mining hard positives for ArtMiner training (steps 1-6 below), on device, in one program.

A step's candidate images arrive as *sources* (uint8, any size) plus, for every scale, the PIL-NEAREST source
row and column of each pixel of the resized image (host-computed, so the resize rule is exact). On device:

1. Canvases (``canvas_images``): at a scale of ``L`` cells on the longer side every image is drawn top-left
   on a square ``(16 L - 1)^2``-pixel canvas (``L x L`` cells), one canvas size per scale whatever the
   aspect ratio, so all candidates at a scale go through the network together.
2. Exact padded features (``canvas_features``): the network sees each image as if alone. Pixels beyond the
   image are set to 0 after ImageNet normalisation, and every conv's input is multiplied by the image's
   valid mask at that layer's resolution, so every conv sees zeros beyond the image, exactly PyTorch's zero
   padding (the max-pool's -inf padding changes nothing after a ReLU). In train mode the mask also restricts
   BN's batch statistics to the image. Valid cells equal a forward pass at the image's own size; cells
   beyond are 0.
3. Queries: ``queries`` 2x2 blocks, the i-th from candidate ``i mod N`` at a scale drawn from ``query_scales``,
   top-left ``(r, c)`` uniform in ``[m, rows - m - 3] x [m, cols - m - 3]`` (``m`` = margin), raw
   (unnormalised) as in the release.
4. Retrieval: sliding cosine (window norm only) of every query over every candidate at every search scale,
   positions within ``m`` cells of the border excluded; best position per scale, best scale per image, top
   ``top_k`` images per query (its own image included).
5. Verification: ``candidate_pairs`` ordered pairs of different ranks of a random query's top-k. The 36 ring
   cells of image 1's 10x10 region (top-left ``(r - 4, c - 4)``), per-cell normalised, vote when their top-1
   cosine match over *all* of image 2's cells lies within +-1 cell (both axes) of the same offset in image 2's
   region.
6. Selection: the ``train_pairs`` pairs with most votes (ties: lower pair index), no threshold.

Cells are ``(row, col)`` (the release calls rows "W"); positions are the 2x2 block's top-left cell in the full
map. Mining runs BN in inference mode under ``stop_gradient``.
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from artdup_jax.artminer.model import NETWORK, l2_normalise
from artdup_jax.artminer.resize_rule import MIN_INPUT, SCALES, STRIDE
from artdup_jax.artminer.similarity import sliding_cosine
from artdup_jax.nn.normalise import imagenet_normalise

BN_MOMENTUM = 0.9  # nn/resnet.py's Flax momentum (PyTorch's 0.1)
QUERY_CELLS = 2  # the 2x2 query block ("s")


@dataclasses.dataclass(frozen=True)
class MiningConfig:
    search_scales: tuple[int, ...] = SCALES  # longer-side cells of retrieval, verification and loss images
    query_scales: tuple[int, ...] = (68, 60, 49, 40, 36)
    min_cells: int = 13  # shorter-side minimum of every map (2 + 2 * 5 + 1)
    margin: int = 5  # border cells where no query or match is taken ("m")
    verification_cells: int = 10  # "v": ring of its border cells votes
    training_cells: int = 12  # "t": its 4 corners are the hard positives
    queries: int = 40  # per step (the release: 2000 per 50-step epoch)
    top_k: int = 10  # images retrieved per query
    candidate_pairs: int = 40  # pairs verified per step (2000 per epoch)
    train_pairs: int = 4  # pairs kept per step by votes (200 of 2000 per epoch, 4 per Adam step)

    def __post_init__(self):
        if self.training_offset > self.margin or self.verification_offset > self.margin:
            raise ValueError("the verification and training regions must fit in the margin")
        if self.min_cells < 2 * self.margin + QUERY_CELLS + 1:
            raise ValueError(f"min_cells must be >= 2 margin + 3 = {2 * self.margin + 3} to place a query")
        if self.top_k < 2 or self.train_pairs > self.candidate_pairs:
            raise ValueError("need top_k >= 2 and train_pairs <= candidate_pairs")

    @property
    def scales(self) -> tuple[int, ...]:
        """Every scale a pyramid is computed at, largest first."""
        return tuple(sorted(set(self.search_scales) | set(self.query_scales), reverse=True))

    @property
    def verification_offset(self) -> int:  # 4 for v = 10: region top-left = position - 4
        return (self.verification_cells - QUERY_CELLS) // 2

    @property
    def training_offset(self) -> int:  # 5 for t = 12
        return (self.training_cells - QUERY_CELLS) // 2


# ---------------------------------------------------------------------------------------- canvas features


def canvas_images(source: jnp.ndarray, pixel_rows: jnp.ndarray, pixel_cols: jnp.ndarray) -> jnp.ndarray:
    """NEAREST-resized images on canvases: ``(B, H, W, 3)`` float32 in [0, 1], 0 beyond each image.

    Args: source ``(B, Hs, Ws, 3)`` uint8; pixel_rows ``(B, H)`` / pixel_cols ``(B, W)`` int source index of
    each canvas pixel, ``-1`` beyond the resized image.
    """
    def one(image, rows, cols):
        picked = jnp.take(jnp.take(image, jnp.maximum(rows, 0), axis=0), jnp.maximum(cols, 0), axis=1)
        inside = (rows >= 0)[:, None, None] & (cols >= 0)[None, :, None]
        return jnp.where(inside, picked.astype(jnp.float32) / 255.0, 0.0)

    return jax.vmap(one)(source, pixel_rows, pixel_cols)


def _valid_mask(cells: jnp.ndarray, shape_hw, per_cell: int, trim: int = 0) -> jnp.ndarray:
    """``(B, h, w, 1)`` True on the first ``per_cell * cells - trim`` rows and cols."""
    rows = jnp.arange(shape_hw[0])[None, :, None, None] < per_cell * cells[:, 0, None, None, None] - trim
    cols = jnp.arange(shape_hw[1])[None, None, :, None] < per_cell * cells[:, 1, None, None, None] - trim
    return rows & cols


def _pixel_mask(cells: jnp.ndarray, shape_hw) -> jnp.ndarray:
    """Valid pixels: ``16 cells - 1`` a side."""
    return _valid_mask(cells, shape_hw, STRIDE, trim=STRIDE - MIN_INPUT)


def _padding_masks(cells: jnp.ndarray, canvas_cells: int, train: bool):
    """Interceptor: zeros beyond the image in every conv's input; BN statistics over the image only (train).

    Zeroing each conv's input reproduces the zero padding a network run on the image alone would see; the
    max-pool's -inf padding makes no difference after a ReLU. A layer of stride ``s`` has ``16 / s`` rows per
    cell (``ceil`` of its size over the canvas cells; 16 at the input, whose last row is already 0).
    """
    def mask_of(x):
        return _valid_mask(cells, x.shape[1:3], -(-x.shape[1] // canvas_cells))

    def interceptor(next_fun, args, kwargs, context):
        if context.method_name != "__call__":
            return next_fun(*args, **kwargs)
        if isinstance(context.module, nn.Conv):
            return next_fun(args[0] * mask_of(args[0]), *args[1:], **kwargs)
        if train and isinstance(context.module, nn.BatchNorm):
            return next_fun(*args, **dict(kwargs, mask=mask_of(args[0])))
        return next_fun(*args, **kwargs)

    return interceptor


def _check_canvas(images: jnp.ndarray) -> int:
    height, width = images.shape[1:3]
    if height != width or (height + 1) % STRIDE:
        raise ValueError(f"canvases must be square, 16 L - 1 pixels a side; got {height}x{width}")
    return (height + 1) // STRIDE


def canvas_features(variables: dict, images: jnp.ndarray, cells: jnp.ndarray) -> jnp.ndarray:
    """Inference-mode features of images drawn top-left on canvases, equal to each image's own forward pass.

    Args:
      images: ``(B, 16 L - 1, 16 L - 1, 3)`` float32 RGB in [0, 1] (``canvas_images``).
      cells: ``(B, 2)`` int ``(rows, cols)`` of each image (its size is ``16 cells - 1`` pixels).
    Returns:
      ``(B, L, L, 256)`` raw features, 0 beyond each image's cells.
    """
    canvas_cells = _check_canvas(images)
    inputs = imagenet_normalise(images) * _pixel_mask(cells, images.shape[1:3])
    with nn.intercept_methods(_padding_masks(cells, canvas_cells, train=False)):
        out = NETWORK.apply(variables, inputs, train=False)
    return out * _valid_mask(cells, out.shape[1:3], 1)


def sequential_running_average(old: jnp.ndarray, per_image: jnp.ndarray, momentum: float = BN_MOMENTUM):
    """Running statistic after one BN update per image, in order, from each image's update of ``old``.

    ``per_image[i] = m old + (1 - m) s_i`` (what a batch-1 forward from ``old`` returns); the sequential result
    is ``m^B old + sum_i m^(B-1-i) (1 - m) s_i``, as the release's one forward pass per image.
    """
    count = per_image.shape[0]
    weights = momentum ** jnp.arange(count - 1, -1, -1, dtype=per_image.dtype)
    return momentum**count * old + jnp.tensordot(weights, per_image - momentum * old, axes=1)


def train_canvas_features(variables: dict, images: jnp.ndarray, cells: jnp.ndarray):
    """Train-mode features, BN statistics per image (batch size 1, as the release), running statistics updated image by
    image in order. Same shapes as ``canvas_features``; returns ``(features, new batch_stats)``."""
    canvas_cells = _check_canvas(images)

    def one(image, image_cells):
        inputs = imagenet_normalise(image[None]) * _pixel_mask(image_cells[None], image.shape[:2])
        with nn.intercept_methods(_padding_masks(image_cells[None], canvas_cells, train=True)):
            out, updates = NETWORK.apply(variables, inputs, train=True, mutable=["batch_stats"])
        return (out * _valid_mask(image_cells[None], out.shape[1:3], 1))[0], updates["batch_stats"]

    maps, per_image = jax.vmap(one)(images, cells)
    stats = jax.tree.map(sequential_running_average, variables["batch_stats"], per_image)
    return maps, stats


# ------------------------------------------------------------------------------------------------- mining


@dataclasses.dataclass(frozen=True)
class Pyramid:
    maps: tuple[jnp.ndarray, ...]  # per scale of MiningConfig.scales: (N, L, L, 256) raw, 0 beyond the image
    cells: jnp.ndarray  # (N, S, 2) int (rows, cols) of each image's map per scale


def pyramid(variables: dict, batch: dict, config: MiningConfig) -> Pyramid:
    """Inference-mode maps of every candidate at every scale: one network call per scale.

    ``batch``: ``source (N, Hs, Ws, 3)`` uint8, ``pixel_rows`` / ``pixel_cols (N, S, 16 max(L) - 1)`` int
    (-1 beyond the image), ``cells (N, S, 2)``; scale axis in ``config.scales`` order.
    """
    maps = []
    for k, scale in enumerate(config.scales):
        size = STRIDE * scale - 1
        images = canvas_images(batch["source"], batch["pixel_rows"][:, k, :size], batch["pixel_cols"][:, k, :size])
        maps.append(canvas_features(variables, images, batch["cells"][:, k]))
    return Pyramid(tuple(maps), batch["cells"])


def _cell_at(maps: jnp.ndarray, image: jnp.ndarray, rows: jnp.ndarray, cols: jnp.ndarray) -> jnp.ndarray:
    """``maps[image, rows, cols]`` with broadcast index arrays -> ``(..., D)``."""
    return maps[image, rows, cols]


def _select_scale(per_scale: list[jnp.ndarray], scale_index: jnp.ndarray) -> jnp.ndarray:
    """``per_scale[scale_index[i]][i]`` for stacks with a leading item axis."""
    stacked = jnp.stack(per_scale)  # (S, I, ...)
    return jnp.take_along_axis(stacked, scale_index.reshape(1, -1, *[1] * (stacked.ndim - 2)), axis=0)[0]


def sample_queries(rng, cells: jnp.ndarray, config: MiningConfig):
    """``(image (Q,), scale (Q,) index into config.scales, position (Q, 2))`` of the query blocks."""
    count, margin = config.queries, config.margin
    num_images = cells.shape[0]
    scale_rng, row_rng, col_rng = jax.random.split(rng, 3)
    query_scales = jnp.asarray([config.scales.index(s) for s in config.query_scales])
    scale = query_scales[jax.random.randint(scale_rng, (count,), 0, len(config.query_scales))]
    image = jnp.arange(count) % num_images  # candidates arrive shuffled: walk them in order
    size = cells[image, scale]  # (Q, 2)
    span = size - 2 * margin - QUERY_CELLS  # rows - 12 positions from m to rows - m - 3
    uniform = jnp.stack([jax.random.uniform(row_rng, (count,)), jax.random.uniform(col_rng, (count,))], -1)
    position = margin + jnp.minimum(jnp.floor(uniform * span).astype(jnp.int32), span - 1)
    return image, scale, position


def query_blocks(pyr: Pyramid, image, scale, position, config: MiningConfig) -> jnp.ndarray:
    """``(Q, 2, 2, 256)`` raw blocks (unnormalised kernels, as the release's training retrieval)."""
    offsets = jnp.arange(QUERY_CELLS)
    rows = position[:, 0, None, None] + offsets[None, :, None]
    cols = position[:, 1, None, None] + offsets[None, None, :]
    per_scale = [_cell_at(maps, image[:, None, None], rows, cols) for maps in pyr.maps]
    return _select_scale(per_scale, scale)


def retrieve(pyr: Pyramid, kernels: jnp.ndarray, config: MiningConfig):
    """Top ``top_k`` candidates per query over the search scales.

    Returns ``score, image, scale (Q, K)`` (scale indexes ``config.scales``) and ``position (Q, K, 2)``.
    """
    margin = config.margin
    best_scores, best_positions = [], []
    search = [config.scales.index(s) for s in config.search_scales]
    for k in search:
        maps = pyr.maps[k]
        scores = sliding_cosine(maps, kernels)  # (N, L - 1, L - 1, Q)
        rows = jnp.arange(scores.shape[1])[None, :, None, None]
        cols = jnp.arange(scores.shape[2])[None, None, :, None]
        cells = pyr.cells[:, k]
        inside = ((rows >= margin) & (rows <= cells[:, 0, None, None, None] - margin - QUERY_CELLS)
                  & (cols >= margin) & (cols <= cells[:, 1, None, None, None] - margin - QUERY_CELLS))
        flat = jnp.where(inside, scores, -jnp.inf).reshape(scores.shape[0], -1, scores.shape[-1])
        best = jnp.argmax(flat, axis=1)  # (N, Q)
        best_scores.append(jnp.take_along_axis(flat, best[:, None], axis=1)[:, 0])
        best_positions.append(jnp.stack([best // scores.shape[2], best % scores.shape[2]], -1))
    scores = jnp.stack(best_scores)  # (S', N, Q)
    scale_choice = jnp.argmax(scores, axis=0)  # first (largest) scale wins ties
    image_scores = jnp.max(scores, axis=0).T  # (Q, N)
    top_scores, top_images = lax.top_k(image_scores, config.top_k)
    chosen = scale_choice.T[jnp.arange(kernels.shape[0])[:, None], top_images]  # (Q, K) into search
    positions = jnp.stack(best_positions)  # (S', N, Q, 2)
    query = jnp.arange(kernels.shape[0])[:, None]
    position = positions[chosen, top_images, query]
    return top_scores, top_images, jnp.asarray(search)[chosen], position


def sample_pairs(rng, num_queries: int, config: MiningConfig):
    """``(query (P,), rank_1 (P,), rank_2 (P,))``: a random query and two different ranks of its top-k."""
    query_rng, first_rng, second_rng = jax.random.split(rng, 3)
    count = config.candidate_pairs
    query = jax.random.randint(query_rng, (count,), 0, num_queries)
    first = jax.random.randint(first_rng, (count,), 0, config.top_k)
    second = (first + 1 + jax.random.randint(second_rng, (count,), 0, config.top_k - 1)) % config.top_k
    return query, first, second


def ring_offsets(size: int) -> np.ndarray:
    """``(4 size - 4, 2)`` offsets of the border cells of a ``size x size`` region, row-major."""
    return np.array([(r, c) for r in range(size) for c in range(size) if r in (0, size - 1) or c in (0, size - 1)],
                    np.int32)


def verification_votes(pyr: Pyramid, image, scale, position, config: MiningConfig) -> jnp.ndarray:
    """Votes ``(P,)`` of image 1's ring for image 2 (axis 1 of ``image, scale (P, 2)``, ``position (P, 2, 2)``)."""
    ring = jnp.asarray(ring_offsets(config.verification_cells))  # (V, 2)
    corner = position - config.verification_offset  # (P, 2, 2) region top-left
    rows_1, cols_1 = corner[:, 0, None, 0] + ring[None, :, 0], corner[:, 0, None, 1] + ring[None, :, 1]
    ring_1 = _select_scale([_cell_at(maps, image[:, 0, None], rows_1, cols_1) for maps in pyr.maps], scale[:, 0])
    ring_1 = l2_normalise(ring_1)  # (P, V, D)
    best = []
    for k, maps in enumerate(pyr.maps):
        target = l2_normalise(maps[image[:, 1]])  # (P, L, L, D)
        cosine = jnp.einsum("pvd,phwd->pvhw", ring_1, target, precision=lax.Precision.HIGHEST)
        cells = pyr.cells[image[:, 1], k]
        inside = ((jnp.arange(maps.shape[1])[None, None, :, None] < cells[:, 0, None, None, None])
                  & (jnp.arange(maps.shape[2])[None, None, None, :] < cells[:, 1, None, None, None]))
        flat = jnp.where(inside, cosine, -jnp.inf).reshape(*cosine.shape[:2], -1)
        index = jnp.argmax(flat, axis=-1)
        best.append(jnp.stack([index // maps.shape[2], index % maps.shape[2]], -1))  # (P, V, 2)
    matched = _select_scale(best, scale[:, 1])
    expected = corner[:, 1, None, :] + ring[None]
    return jnp.sum(jnp.all(jnp.abs(matched - expected) <= 1, axis=-1), axis=-1)


@dataclasses.dataclass(frozen=True)
class MinedPairs:
    image: jnp.ndarray  # (B, 2) candidate index of each pair's two images
    scale: jnp.ndarray  # (B, 2) index into MiningConfig.scales
    position: jnp.ndarray  # (B, 2, 2) 2x2 block's top-left (row, col) in each image's map
    votes: jnp.ndarray  # (B,) of the kept pairs
    candidate_votes: jnp.ndarray  # (P,) of every verified pair


jax.tree_util.register_dataclass(MinedPairs, data_fields=["image", "scale", "position", "votes", "candidate_votes"],
                                 meta_fields=[])


def mine(variables: dict, batch: dict, rng, config: MiningConfig) -> MinedPairs:
    """Steps 1-6 with the current weights, inference-mode BN, no gradient."""
    variables = jax.lax.stop_gradient(variables)
    query_rng, pair_rng = jax.random.split(rng)
    pyr = pyramid(variables, batch, config)
    if config.top_k > pyr.cells.shape[0]:
        raise ValueError(f"top_k={config.top_k} needs at least as many candidate images, got {pyr.cells.shape[0]}")
    image, scale, position = sample_queries(query_rng, pyr.cells, config)
    kernels = query_blocks(pyr, image, scale, position, config)
    _, top_images, top_scales, top_positions = retrieve(pyr, kernels, config)
    query, first, second = sample_pairs(pair_rng, config.queries, config)
    pair_image = jnp.stack([top_images[query, first], top_images[query, second]], -1)
    pair_scale = jnp.stack([top_scales[query, first], top_scales[query, second]], -1)
    pair_position = jnp.stack([top_positions[query, first], top_positions[query, second]], 1)
    votes = verification_votes(pyr, pair_image, pair_scale, pair_position, config)
    kept_votes, kept = lax.top_k(votes, config.train_pairs)
    return jax.lax.stop_gradient(MinedPairs(pair_image[kept], pair_scale[kept], pair_position[kept], kept_votes,
                                            votes))
