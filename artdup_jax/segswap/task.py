"""The ``segswap`` training task: the co-segmentation transformer on synthetic segment-swap pairs (``data``).

Backbone: frozen. Its features are computed inside the step (inference-mode BatchNorm, under
``stop_gradient``; ``optimizer.trainable = ("transformer",)`` keeps Adam off it). Precomputing would need a
fixed, finite set of images, while the pairs here are synthesised afresh for every index, and the backbone's
forward is cheap next to the transformer's forward and backward on the 4 × (positives + negatives) maps.
``config.backbone_from`` names converted MoCo-v2 ResNet-50 variables (``python -m artdup_jax.convert
moco_resnet50 ...``); empty means random weights (tests and smoke runs only).

One step: backbone on the A and B images; one coin for the whole batch swaps (A, B) -> (X, Y); the
positives (X_i, Y_i) with B's region key mask, and the in-batch negatives (A_i, B_{i+s}), s = 1..3 (no key
masks, never swapped), go through the transformer (dropout on) in one call; negatives whose images share a
content group get weight 0. Stage 2 (``hard_negatives.count > 0``) also mines hard negatives inside the step:
every unordered pair of a pool (the batch's A and B images plus ``pool_per_example`` extra images per
example) that shares no content is scored with the current transformer (dropout off, no gradient), as the
mean mask of X plus the mean mask of Y, scores ≤ ``min_score`` set to 0; ``count`` pairs are drawn without
replacement ∝ score (Gumbel top-k) and join the negatives. The official script scores a pool of 500 images
once per ≤ 100 iterations instead; mining per step from a smaller pool keeps the step pure.

evaluate(): on held-out synthetic pairs, the mask IoU (mask > 0.5 against GT > 0.5, both images, no key
masks) against two trivial predictions (every cell foreground; the central half of each side), the mask's
foreground-vs-background AUC over the cells (threshold-free; 0.5 = no ranking), the loss,
and the mean predicted mask on negative pairs (A_i, B_{i+1}); the metric functions are in ``metrics``.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from artdup_jax.checkpoints.orbax_io import load_variables
from artdup_jax.segswap import data, losses
from artdup_jax.segswap.metrics import foreground_auc, mask_iou
from artdup_jax.segswap.model import SegSwap
from artdup_jax.segswap.style import load_painting_styliser
from artdup_jax.segswap.transformer import TransformerConfig
from artdup_jax.training.initialise import replace_matching
from artdup_jax.training.task import Task

_EVAL_SEED_OFFSET = 1_000_003  # evaluation pairs come from their own seed stream


def transformer_config(config) -> TransformerConfig:
    return TransformerConfig(**config.model)


_OPTIONAL_SYNTHESIS_FIELDS = ("one_object_scales", "aspect", "max_rotation", "max_scale_change",
                              "border_crop_probability")  # SynthesisConfig's defaults when config.input lacks them


def synthesis_config(config) -> data.SynthesisConfig:
    inp = config.input
    return data.SynthesisConfig(
        image_size=inp.image_size, stride=inp.stride, two_object_probability=inp.two_object_probability,
        dilation=inp.dilation, blend_modes=tuple(inp.blend_modes), stylise_probability=inp.stylise_probability,
        tps_probability=inp.tps_probability, region_mask_probability=inp.region_mask_probability,
        **{name: tuple(inp[name]) if isinstance(inp[name], (tuple, list)) else inp[name]
           for name in _OPTIONAL_SYNTHESIS_FIELDS if name in inp})


def create_model(config) -> SegSwap:
    return SegSwap(transformer_config(config))


def rbg_key(rng: jax.Array) -> jax.Array:
    """A typed RBG key drawn from ``rng``, for initialisation and dropout.

    XLA's RngBitGenerator compiles several times faster on CPU than threefry, whose per-shape kernels
    dominate compiling ResNet-50's init and the dropout masks of the step. Its bits may change with the
    sharding or the XLA version, which only affects the random initial weights and the dropout noise.
    """
    return jax.random.wrap_key_data(jax.random.bits(rng, (4,), jnp.uint32), impl="rbg")


def init_variables(model, rng, config) -> dict:
    size = config.input.image_size
    variables = dict(jax.jit(model.init)(rbg_key(rng), jnp.zeros((1, size, size, 3), jnp.float32)))
    if config.get("backbone_from"):
        loaded = load_variables(config.backbone_from)
        backbone = {"params": {"backbone": loaded["params"]}, "batch_stats": {"backbone": loaded["batch_stats"]}}
        variables = replace_matching(variables, backbone, source=config.backbone_from)
    return variables


# --------------------------------------------------------------------------------------------------------
# The step.


def _disjoint(groups_1: jnp.ndarray, groups_2: jnp.ndarray) -> jnp.ndarray:
    """``(N, k)``, ``(N, k)`` content groups -> ``(N,)`` True where the two images share none."""
    return jnp.all(groups_1[:, :, None] != groups_2[:, None, :], axis=(1, 2))


def _features(model, variables, images):
    return jax.lax.stop_gradient(model.apply(variables, images, method=SegSwap.features))


def _mine_hard_negatives(model, variables, features, groups, rng, config):
    """Indices ``(count,)`` of two pool images each and the pairs' weights (score > 0); see the module docstring."""
    hard = config.hard_negatives
    first, second = np.triu_indices(features.shape[0], 1)
    out_x, out_y = model.apply(variables, features[first], features[second], method=SegSwap.transform)
    score = jnp.mean(out_x[..., 2], axis=(1, 2)) + jnp.mean(out_y[..., 2], axis=(1, 2))
    score = jax.lax.stop_gradient(jnp.where((score > hard.min_score) & _disjoint(groups[first], groups[second]),
                                            score, 0.0))
    keys = jnp.where(score > 0, jnp.log(jnp.maximum(score, 1e-30)) + jax.random.gumbel(rng, score.shape), -jnp.inf)
    _, picked = jax.lax.top_k(keys, hard.count)
    return jnp.asarray(first)[picked], jnp.asarray(second)[picked], (score[picked] > 0).astype(jnp.float32)


def loss_fn(model, variables, batch, rng, config):
    swap_rng, dropout_rng, mining_rng = jax.random.split(rng, 3)
    positives = batch["image_a"].shape[0]
    shifts = range(1, config.loss.negatives_per_positive + 1)
    if positives <= len(shifts):
        raise ValueError(f"in-batch negatives need more than {len(shifts)} pairs per batch, got {positives}")
    images = [batch["image_a"], batch["image_b"]]
    if config.hard_negatives.count:
        images.append(batch["pool_images"].reshape((-1,) + batch["image_a"].shape[1:]))
    features = _features(model, variables, jnp.concatenate(images))  # one backbone call for every image
    features_a, features_b, pool = features[:positives], features[positives:2 * positives], features[2 * positives:]
    key_mask_a = jnp.ones_like(batch["key_mask_b"])
    swap = jax.random.bernoulli(swap_rng)
    x_of = lambda a, b: jnp.where(swap, b, a)  # noqa: E731  one coin for the whole batch
    y_of = lambda a, b: jnp.where(swap, a, b)  # noqa: E731
    groups_a, groups_b = batch["groups"][:, 0], batch["groups"][:, 1]

    source = [x_of(features_a, features_b)] + [features_a] * len(shifts)
    target = [y_of(features_a, features_b)] + [jnp.roll(features_b, -s, axis=0) for s in shifts]
    key_source = [x_of(key_mask_a, batch["key_mask_b"])] + [key_mask_a] * len(shifts)
    key_target = [y_of(key_mask_a, batch["key_mask_b"])] + [key_mask_a] * len(shifts)
    weights = [_disjoint(groups_a, jnp.roll(groups_b, -s, axis=0)).astype(jnp.float32) for s in shifts]
    metrics = {}
    if config.hard_negatives.count:
        pool_features = jnp.concatenate([features_a, features_b, pool])
        pool_groups = jnp.concatenate([groups_a, groups_b, batch["pool_groups"].reshape(-1, 2)])
        first, second, hard_weight = _mine_hard_negatives(model, variables, pool_features, pool_groups,
                                                          mining_rng, config)
        source.append(pool_features[first])
        target.append(pool_features[second])
        key_source.append(jnp.ones((config.hard_negatives.count,) + key_mask_a.shape[1:], bool))
        key_target.append(key_source[-1])
        weights.append(hard_weight)
        metrics["hard_negatives"] = jnp.sum(hard_weight)

    out_x, out_y = model.apply(variables, jnp.concatenate(source), jnp.concatenate(target),
                               jnp.concatenate(key_source), jnp.concatenate(key_target), train=True,
                               method=SegSwap.transform, rngs={"dropout": rbg_key(dropout_rng)})
    loss, parts = losses.segswap_loss(
        out_x[:positives], out_y[:positives],
        x_of(batch["mask_a"], batch["mask_b"]), y_of(batch["mask_a"], batch["mask_b"]),
        x_of(batch["flow_a"], batch["flow_b"]), y_of(batch["flow_a"], batch["flow_b"]),
        out_x[positives:], out_y[positives:], jnp.concatenate(weights),
        correspondence_weight=config.loss.correspondence_weight)
    return loss, ({**parts, **metrics}, variables["batch_stats"])


# --------------------------------------------------------------------------------------------------------
# Data.


@functools.lru_cache(maxsize=4)
def _source_and_styles(kind: str, image_folder: str, mask_folder: str, tfds_data_dir: str, style_folder: str,
                       max_side: int, segment_area: tuple[float, float]):
    source = data.make_source(kind, image_folder=image_folder, mask_folder=mask_folder,
                              tfds_data_dir=tfds_data_dir, max_side=max_side, segment_area=segment_area)
    paintings = data.folder_images(style_folder, max_side) if style_folder else data.bundled_paintings()
    return source, data.prepare_styles(paintings, max_side)


def _example_fn(config, seed: int):
    inp = config.input
    source, styles = _source_and_styles(inp.segments, inp.image_folder, inp.mask_folder, inp.tfds_data_dir,
                                        inp.style_folder, inp.max_side, tuple(inp.get("segment_area", (0.02, 0.4))))
    pool = config.hard_negatives.pool_per_example if config.hard_negatives.count else 0
    # AdaIN from converted weights; without them the classical stylisation (example["style_method"]).
    styliser = load_painting_styliser(inp.adain_weights) if inp.get("adain_weights") else None
    return functools.partial(data.make_example, seed=seed, source=source, styles=styles,
                             config=synthesis_config(config), pool_images=pool, styliser=styliser)


def input_pipeline(config, *, first_step, process_index, process_count):
    from artdup_jax.data.tf_pipeline import indexed_batches  # TensorFlow only for training

    pool = config.hard_negatives.pool_per_example if config.hard_negatives.count else 0
    return indexed_batches(_example_fn(config, config.seed), data.signature(synthesis_config(config), pool),
                           first_step=first_step, global_batch=config.batch_size, process_index=process_index,
                           process_count=process_count, threads=config.input.threads)


# --------------------------------------------------------------------------------------------------------
# Evaluation.


def centre_prior(shape: tuple[int, ...]) -> np.ndarray:
    """``(N, h, w)`` ones on the cells whose centres lie in the central half of each side."""
    h, w = shape[1:]
    y = (np.arange(h) + 0.5) / h
    x = (np.arange(w) + 0.5) / w
    box = (np.abs(y - 0.5)[:, None] < 0.25) & (np.abs(x - 0.5)[None, :] < 0.25)
    return np.broadcast_to(box.astype(np.float32), shape)


_eval_batches: dict = {}


def _eval_batch(config) -> dict:
    """The held-out pairs, made once per config."""
    key = config.to_json()
    if key not in _eval_batches:
        make = _example_fn(config, config.seed + _EVAL_SEED_OFFSET)
        examples = [make(i) for i in range(config.eval_pairs)]
        _eval_batches.clear()
        _eval_batches[key] = {k: np.stack([e[k] for e in examples])
                              for k in ("image_a", "image_b", "mask_a", "mask_b", "flow_a", "flow_b", "groups")}
    return _eval_batches[key]


_forward_cache: dict = {}


def _eval_forward(model):
    forward = _forward_cache.get(id(model))
    if forward is None:
        @jax.jit
        def forward(variables, image_a, image_b):
            features_a, features_b = jnp.split(model.apply(variables, jnp.concatenate([image_a, image_b]),
                                                           method=SegSwap.features), 2)
            return model.apply(variables, jnp.concatenate([features_a, features_a]),
                               jnp.concatenate([features_b, jnp.roll(features_b, -1, axis=0)]),
                               method=SegSwap.transform)
        forward = _forward_cache[id(model)] = forward
    return forward


def held_out_metrics(out_x: np.ndarray, out_y: np.ndarray, batch: dict, correspondence_weight: float) -> dict:
    """The evaluation numbers from the model's outputs on the held-out pairs.

    Args:
      out_x, out_y: ``(2P, h, w, 3)`` outputs (x, y, mask) for A and B: rows ``:P`` the positive pairs
        (A_i, B_i), rows ``P:`` the negative pairs (A_i, B_{i+1}).
      batch: the held-out pairs (``mask_a``, ``mask_b`` ``(P, h, w)``, ``flow_a``, ``flow_b``, ``groups``).
    """
    pairs = batch["mask_a"].shape[0]
    truth = np.concatenate([batch["mask_a"], batch["mask_b"]])
    predicted = np.concatenate([out_x[:pairs, ..., 2], out_y[:pairs, ..., 2]])
    weight = np.all(batch["groups"][:, 0, :, None] != np.roll(batch["groups"][:, 1], -1, axis=0)[:, None, :],
                    axis=(1, 2)).astype(np.float32)
    loss, parts = losses.segswap_loss(out_x[:pairs], out_y[:pairs], batch["mask_a"], batch["mask_b"],
                                      batch["flow_a"], batch["flow_b"], out_x[pairs:], out_y[pairs:], weight,
                                      correspondence_weight=correspondence_weight)
    iou = float(mask_iou(predicted, truth).mean())
    foreground = float(mask_iou(np.ones_like(truth), truth).mean())
    centre = float(mask_iou(centre_prior(truth.shape), truth).mean())
    return {"mask_iou": iou, "all_foreground_iou": foreground, "centre_prior_iou": centre,
            "baseline_iou": max(foreground, centre), "mask_auc": foreground_auc(predicted, truth), "loss": float(loss),
            "correspondence": float(parts["correspondence"]), "negative_mask": float(parts["negative_mask"])}


def evaluate(model, variables, config) -> dict:
    batch = _eval_batch(config)
    out_x, out_y = map(np.asarray, _eval_forward(model)(variables, batch["image_a"], batch["image_b"]))
    return held_out_metrics(out_x, out_y, batch, config.loss.correspondence_weight)


TASK = Task(name="segswap", create_model=create_model, init_variables=init_variables, loss_fn=loss_fn,
            input_pipeline=input_pipeline, evaluate=evaluate)
