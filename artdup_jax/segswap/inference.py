"""What a user calls: co-segmentation of a pair, one query scored against a collection, and the pairwise stage
of object discovery.

  variables = weights.load_segswap("hard_mining_neg5.pth")                   # or load_segswap(seed=0): random
  predict(variables, source, target)            -> {"source", "target", "features_source", "features_target"}
  features = collection_features(variables, images)                          # (N, h, w, 1024), once
  prior = refine_prior(variables, features[q], box_cells)                    # the query's self-pair refinement
  score_against_collection(variables, features[q], features, prior=prior, region=box_cells)
                                                -> {"score": (N,), "location": (N, 2)}
  stage = pairwise_stage(variables, features)   -> every unordered pair's outputs and scores; then
                                                   ``discovery.discover`` on the matchable ones

Images are ``(B, H, W, 3)`` float32 RGB in [0, 1] (ImageNet-normalised inside), H and W multiples of 16; the
release's evaluation loaders resized through 8-bit PIL (``resize_rgb``) and some fed a doubly normalised image
(``release_inverse_normalisation`` reproduces it). Model outputs are ``(B, h, w, 3)``: (x, y) where the cell's
content lies in the other image, normalised [0, 1], cell centres at (j + 0.5) / w, and the co-segmentation mask.
"""

from __future__ import annotations

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

from artdup_jax.data.outputs import to_uint8
from artdup_jax.nn.normalise import IMAGENET_MEAN, IMAGENET_STD
from artdup_jax.segswap.discovery import PairOutputs
from artdup_jax.segswap.masks import cycle_consistent_masks, joint_mask
from artdup_jax.segswap.model import SegSwap
from artdup_jax.segswap.score import (
    every_cell,
    pair_scores,
    padded_cell_count,
    region_cells,
    region_location,
    score_at_cells,
)
from artdup_jax.segswap.transformer import SMALL, TransformerConfig

_MEAN = np.array(IMAGENET_MEAN, np.float32)
_STD = np.array(IMAGENET_STD, np.float32)


# ------------------------------------------------------------------------------------------------- the model


@functools.partial(jax.jit, static_argnames="config")
def predict(variables: dict, source: jnp.ndarray, target: jnp.ndarray, *, config: TransformerConfig = SMALL) -> dict:
    """Co-segmentation of an image pair (inference: no dropout).

    Args:
      variables: ``SegSwap`` variables (``model`` module docstring).
      source: ``(B, H, W, 3)`` float32 RGB in [0, 1].
      target: ``(B, H', W', 3)`` float32 RGB in [0, 1]; may differ in size from ``source``.
      config: transformer hyper-parameters (static); the default is the released model.
    Returns:
      source, target: ``(B, h, w, 3)`` per image, channels (x, y, mask) in [1e-7, 1 - 1e-7]. (x, y) is
        where the cell's content lies in the other image, normalised [0, 1] over that image's width and
        height, cell centres at (j + 0.5) / w (align_corners=False); mask is the co-segmentation probability.
      features_source, features_target: ``(B, h, w, 1024)``, the L2-normalised backbone features.
    """
    return SegSwap(config).apply(variables, source, target)


@functools.partial(jax.jit, static_argnames="config")
def extract_features(variables: dict, images: jnp.ndarray, *, config: TransformerConfig = SMALL) -> jnp.ndarray:
    """``(B, H, W, 3)`` RGB in [0, 1] -> L2-normalised backbone features ``(B, H/16, W/16, 1024)``."""
    return SegSwap(config).apply(variables, images, method=SegSwap.features)


@functools.partial(jax.jit, static_argnames="config")
def predict_from_features(variables: dict, features_source: jnp.ndarray, features_target: jnp.ndarray,
                          key_mask_source: jnp.ndarray | None = None, key_mask_target: jnp.ndarray | None = None,
                          *, config: TransformerConfig = SMALL) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Transformer only (inference), on features from ``extract_features``.

    Key masks: ``(B, h, w)`` bool, True = usable as an attention key (None: all).
    Returns ``(out_source, out_target)``, ``(B, h, w, 3)`` each, as in ``predict``.
    """
    return SegSwap(config).apply(variables, features_source, features_target, key_mask_source, key_mask_target,
                                 method=SegSwap.transform)


# ------------------------------------------------------------------------------- inputs as the release made them


def resize_rgb(image: np.ndarray, size_wh: tuple[int, int], resample: int = Image.Resampling.BILINEAR) -> np.ndarray:
    """``(H, W, 3)`` float RGB in [0, 1] -> ``(h, w, 3)`` float32, through 8-bit PIL as the release (exact for
    images read from 8-bit files)."""
    resized = Image.fromarray(to_uint8(image)).resize(tuple(int(s) for s in size_wh), resample=resample)
    return np.asarray(resized, np.float32) / 255.0


def release_inverse_normalisation(images: np.ndarray) -> np.ndarray:
    """Inputs that make the model see what the Tokyo / Pitts database and Internet loaders fed the release.

    Those loaders normalised with mean ``-m/s`` and std ``1/s``, i.e. gave the network ``x·s + m`` (a bug of the
    release). The model normalises ``(x - m)/s`` inside, so this returns ``(x·s + m)·s + m`` (no longer in [0, 1]).
    """
    return (np.asarray(images, np.float32) * _STD + _MEAN) * _STD + _MEAN


# ------------------------------------------------------------------------------- one query against a collection


def _blocks(array: np.ndarray, batch_size: int):
    """Yields ``(block, valid)`` with every block padded (with zeros) to ``batch_size``: one compilation."""
    for start in range(0, len(array), batch_size):
        block = np.asarray(array[start:start + batch_size])
        valid = len(block)
        if valid < batch_size:
            block = np.concatenate([block, np.zeros((batch_size - valid, *block.shape[1:]), block.dtype)])
        yield block, valid


def collection_features(variables: dict, images, *, batch_size: int = 32,
                        config: TransformerConfig = SMALL) -> np.ndarray:
    """``(N, H, W, 3)`` RGB in [0, 1] -> L2-normalised features ``(N, h, w, 1024)`` (NumPy), in batches."""
    variables = jax.device_put(variables)  # once, not once per block (converted variables are NumPy)
    chunks = [np.asarray(extract_features(variables, jnp.asarray(block, jnp.float32), config=config))[:valid]
              for block, valid in _blocks(np.asarray(images), batch_size)]
    return np.concatenate(chunks)


@functools.partial(jax.jit, static_argnames="config")
def refine_prior(variables: dict, query_features: jnp.ndarray, prior: jnp.ndarray, *,
                 config: TransformerConfig = SMALL) -> jnp.ndarray:
    """Self-pair cycle-consistent prior (Brueghel / Tokyo / Pitts query refinement).

    Args:
      query_features: ``(h, w, C)`` L2-normalised backbone features of the query.
      prior: ``(h, w)`` initial prior (the dilated box, or ones).
    Returns:
      ``(h, w)`` float32: ``a'`` of ``cycle_consistent_masks(prior · O1[mask], O2[mask], O1[xy], O2[xy])``.
    """
    out_1, out_2 = predict_from_features(variables, query_features[None], query_features[None], config=config)
    refined, _ = cycle_consistent_masks(prior[None] * out_1[..., 2], out_2[..., 2], out_1[..., :2], out_2[..., :2])
    return refined[0]


@functools.partial(jax.jit, static_argnames="config")
def _score_block(variables, query_features, block_features, prior, region, cells, valid, config):
    """One compiled call: transformer on ``B`` (query, image) pairs, then their scores over ``cells`` ``(K,)``."""
    batch = block_features.shape[0]
    query = jnp.broadcast_to(query_features[None], (batch, *query_features.shape))
    out_query, out_block = predict_from_features(variables, query, block_features, config=config)
    priors = jnp.broadcast_to(prior, (batch, *prior.shape))
    scores = jax.vmap(score_at_cells, in_axes=(0, 0, 0, 0, 0, None, None))(
        out_query, out_block, query, block_features, priors, cells, valid)
    return scores, region_location(out_query, region)


def score_against_collection(variables: dict, query, collection, *, prior=None, region=None, batch_size: int = 32,
                             config: TransformerConfig = SMALL) -> dict:
    """Scores one query against every image of a collection, ``batch_size`` pairs per compiled call.

    The query is the source of every pair (official Brueghel / Tokyo / Pitts convention).

    Args:
      variables: ``SegSwap`` variables.
      query: ``(H, W, 3)`` RGB image in [0, 1], or its features ``(h, w, C)`` from ``extract_features``.
      collection: ``(N, H', W', 3)`` images in [0, 1], or features ``(N, h', w', C)`` (e.g. a cache from
        ``collection_features``). A last axis of 3 means images. Host (NumPy) arrays are fine: only one
        block at a time goes to the device.
      prior: ``(h, w)`` prior mask on the query cells (None: ones). The Brueghel recipe refines it first
        with ``refine_prior``.
      region: ``(h, w)`` bool evaluation region P (None: every cell).
    Returns:
      ``{"score": (N,) float32, "location": (N, 2) float32}`` (NumPy): S(query, image) and the mean predicted
      (x, y) over the region, in [0, 1] of each collection image.
    """
    variables = jax.device_put(variables)
    query = jnp.asarray(query, jnp.float32)
    if query.shape[-1] == 3:
        query = extract_features(variables, query[None], config=config)[0]
    if np.shape(collection)[-1] == 3:
        collection = collection_features(variables, collection, batch_size=batch_size, config=config)
    h, w, _ = query.shape
    prior = jnp.ones((h, w), jnp.float32) if prior is None else jnp.asarray(prior, jnp.float32)
    region = jnp.ones((h, w), bool) if region is None else jnp.asarray(region, bool)
    region_np = np.asarray(region)
    cells = cell_valid = None  # every cell
    if not every_cell(region_np):
        cells, cell_valid = (a[0] for a in region_cells(region_np, (1, h, w),
                                                        padded_cell_count(int(region_np.sum()), h * w)))
    scores, locations = [], []
    for block, valid in _blocks(np.asarray(collection), batch_size):
        score, location = _score_block(variables, query, jnp.asarray(block, jnp.float32), prior, region,
                                       cells, cell_valid, config)
        scores.append(np.asarray(score)[:valid])
        locations.append(np.asarray(location)[:valid])
    return {"score": np.concatenate(scores), "location": np.concatenate(locations)}


# ------------------------------------------------------------------------------- discovery: the pairwise stage


@functools.partial(jax.jit, static_argnames=("config", "flip"))
def _pair_block(variables, features, flipped_features, first, second, *, config, flip):
    features_1, features_2 = features[first], features[second]
    out_1, out_2 = predict_from_features(variables, features_1, features_2, config=config)
    flipped = jnp.zeros(first.shape, bool)
    if flip:
        flip_1, flip_2 = predict_from_features(variables, features_1, flipped_features[second], config=config)
        # Back to the unflipped second image (the release maps them back wrongly): image 1's x mirrors; image 2's
        # map flips left-right and its x, which points into the unflipped image 1, stays.
        flip_1 = flip_1.at[..., 0].set(1.0 - flip_1[..., 0])
        flip_2 = flip_2[:, :, ::-1]
        flipped = jnp.sum(flip_1[..., 2], axis=(1, 2)) > jnp.sum(out_1[..., 2], axis=(1, 2))
        out_1 = jnp.where(flipped[:, None, None, None], flip_1, out_1)
        out_2 = jnp.where(flipped[:, None, None, None], flip_2, out_2)
    cycle_1, cycle_2 = joint_mask(out_1, out_2), joint_mask(out_2, out_1)  # one-step m1·S(m2, C12), m2·S(m1, C21)
    scores = jnp.stack([pair_scores(out_1, out_2, features_1, features_2),
                        pair_scores(out_2, out_1, features_2, features_1)], axis=-1)
    cells = out_1.shape[1] * out_1.shape[2]
    valid = (jnp.sum(cycle_1, axis=(1, 2)) >= 0.01 * cells) & (jnp.sum(cycle_2, axis=(1, 2)) >= 0.01 * cells)
    return out_1, out_2, jnp.where(valid[:, None], scores, 0.0), cycle_1, cycle_2, flipped


def pairwise_stage(variables: dict, features: np.ndarray, flipped_features: np.ndarray | None = None, *,
                   batch_size: int = 32, config: TransformerConfig = SMALL) -> dict:
    """Every unordered pair (i < j, ``itertools.combinations`` order), ``batch_size`` pairs per compiled call.

    Args:
      features: ``(N, h, w, C)`` L2-normalised backbone features (all images the same size).
      flipped_features: features of the horizontally flipped images; given, each pair is also run against the
        flipped second image and that result (mapped back) is kept when image 1's mask sum is larger.
    Returns:
      ``{"outputs": PairOutputs (all pairs), "matchable": (P,) bool (max(S12, S21) > 1% of the cells),
      "flipped": (P,) bool, "cycle_first" / "cycle_second": (P, h, w) one-step cycle masks}``, NumPy. A pair whose
      cycle masks sum below 1% of the cells scores 0.
    """
    count = len(features)
    if count < 2:
        raise ValueError(f"the pairwise stage needs at least two images, got {count}")
    pairs = np.array(list(itertools.combinations(range(count), 2)), np.int32)
    variables = jax.device_put(variables)
    features_device = jnp.asarray(features, jnp.float32)
    flip = flipped_features is not None
    flipped_device = jnp.asarray(flipped_features, jnp.float32) if flip else features_device
    chunks = []
    for start in range(0, len(pairs), batch_size):
        block = pairs[start:start + batch_size]
        valid = len(block)
        padded = np.concatenate([block, np.zeros((batch_size - valid, 2), np.int32)])  # one compilation
        result = _pair_block(variables, features_device, flipped_device, padded[:, 0], padded[:, 1],
                             config=config, flip=flip)
        chunks.append([np.asarray(r)[:valid] for r in result])
    first, second, scores, cycle_1, cycle_2, flipped = (np.concatenate(c) for c in zip(*chunks))
    height, width = features.shape[1:3]
    return {"outputs": PairOutputs(pairs, first, second, scores),
            "matchable": scores.max(axis=1) > 0.01 * height * width,
            "flipped": flipped, "cycle_first": cycle_1, "cycle_second": cycle_2}
