"""SegSwap: the co-segmentation transformer on synthetic segment-swap pairs.

  coco            stage 1 (the default): COCO 2017 instances (a prepared tfds ``coco/2017_panoptic``,
                  --config.input.tfds_data_dir=DIR), Poisson blending, 480² images, the released "small"
                  transformer, 5 positives + 15 in-batch negatives per step, Adam 2e-4 -> 1e-5 at epoch 50
  unsupervised    stage 1 on segments found without labels (Felzenszwalb regions) in any image folder
                  (--config.input.image_folder=DIR; empty: the photos bundled with scikit-image and the
                  unraphael copies), copy-paste / blurred / Poisson blending mixed
  hard_negatives  stage 2 from stage 1 (--config.init_from=<stage-1 workdir>): lr 1e-5 constant, + 5 hard
                  negatives per step mined in the step, 49 rounds × 100 iterations
  smoke           unsupervised stage 1 at 128² with a small transformer on easy pairs (below): within a few
                  minutes on 2 CPU cores the loss falls and the held-out correspondence error drops (0.25 ->
                  0.05); the masks stay at the base rate, no grid bug (tests/segswap/test_training.py says why)
  tiny            tests: 64² images, a few steps, with hard-negative mining on so every branch runs

The backbone is frozen (``optimizer.trainable``); set ``backbone_from`` to converted MoCo-v2 variables
(``python -m artdup_jax.convert moco_resnet50 moco_v2_800ep_pretrain.pth.tar OUT``) for real runs. Style
images: ``input.style_folder`` (the spec uses the Brueghel collection; empty: the unraphael copies). Stylisation:
AdaIN with ``input.adain_weights`` (``python -m artdup_jax.convert adain vgg_normalised.pth decoder.pth OUT``),
else a classical stand-in; each example's ``style_method`` says which.

Schedule (§3.2): the spec warms up linearly over 1,000 steps, then 2e-4 for 50 epochs of 9,000 steps and 1e-5
after (×0.05): the harness's "step" schedule with ``warmup_steps`` (a plain linear ramp from 0; the official
code's one full-rate first step, a side effect of setting the rate after each step, is not reproduced).
"""

import ml_collections

_STEPS_PER_EPOCH = 9_000
_WARMUP_STEPS = 1_000

_SMALL = dict(d_model=256, num_heads=2, dim_feedforward=256, dropout=0.1, layer_types="ICICIN",
              position_weight=0.1, feature_weight=1.0)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    variant = arg or "coco"
    if variant not in ("coco", "unsupervised", "hard_negatives", "smoke", "tiny"):
        raise ValueError(f"unknown variant {variant!r}; use coco, unsupervised, hard_negatives, smoke or tiny")

    config = ml_collections.ConfigDict()
    config.task = "segswap"
    config.seed = 0
    config.model = dict(_SMALL)
    config.backbone_from = ""  # converted MoCo-v2 ResNet-50 (layer3) variables; empty: random weights
    config.init_from = ""  # hard_negatives: the stage-1 workdir
    config.input = dict(
        segments="coco", image_folder="", mask_folder="", tfds_data_dir="", style_folder="", max_side=640,
        adain_weights="",  # converted AdaIN variables (convert family adain); empty: classical stylisation
        image_size=480, stride=16, dilation=20, blend_modes=("poisson",), two_object_probability=0.5,
        one_object_scales=(0.2, 1.0), aspect=(0.7, 1.0), max_rotation=15.0, max_scale_change=0.0,
        border_crop_probability=0.2, segment_area=(0.02, 0.4),
        stylise_probability=0.5, tps_probability=0.5, region_mask_probability=0.5, threads=8)
    config.loss = dict(correspondence_weight=8.0, negatives_per_positive=3)
    config.hard_negatives = dict(count=0, pool_per_example=0, min_score=0.04)
    config.batch_size = 5  # positive pairs; each step also runs 3 negatives per positive
    config.total_steps = _WARMUP_STEPS + 99 * _STEPS_PER_EPOCH
    config.optimizer = dict(name="adam", learning_rate=2e-4, schedule="step",
                            decay_steps=_WARMUP_STEPS + 50 * _STEPS_PER_EPOCH, decay=0.05,
                            warmup_steps=_WARMUP_STEPS, trainable=("transformer",))
    config.log_every = 100
    config.eval_every = _STEPS_PER_EPOCH
    config.eval_pairs = 64
    config.checkpoint_every = _STEPS_PER_EPOCH
    config.keep_checkpoints = 3

    if variant in ("unsupervised", "smoke", "tiny"):
        config.input.segments = "unsupervised"
        config.input.blend_modes = ("copy", "blur", "poisson")
    if variant == "hard_negatives":
        # §3.3: from stage 1 (params; the harness does not carry Adam's state over), constant 1e-5, no warm-up.
        config.hard_negatives = dict(count=5, pool_per_example=2, min_score=0.04)
        config.total_steps = 49 * 100
        config.optimizer = dict(name="adam", learning_rate=1e-5, schedule="constant", trainable=("transformer",))
        config.eval_every = 100
        config.checkpoint_every = 100
    if variant == "smoke":
        # Easy pairs, because the backbone is random offline: one large object (15-60 % of its image) pasted at
        # its own scale, no rotation, aspect change, stylisation or TPS; one in-batch negative per positive.
        config.model = dict(_SMALL, d_model=64, dim_feedforward=128)
        config.input.update(image_size=128, max_side=320, threads=2, segment_area=(0.15, 0.6),
                            two_object_probability=0.0, blend_modes=("copy",), stylise_probability=0.0,
                            tps_probability=0.0, aspect=(1.0, 1.0), max_rotation=0.0, max_scale_change=1.0,
                            border_crop_probability=0.0)
        config.loss.negatives_per_positive = 1
        config.batch_size = 8
        config.total_steps = 300
        config.optimizer = dict(name="adam", learning_rate=1e-3, schedule="cosine", warmup_steps=20,
                                trainable=("transformer",))
        config.log_every = 10
        config.eval_every = 150
        config.eval_pairs = 32
        config.checkpoint_every = 150
        config.keep_checkpoints = 2
    if variant == "tiny":
        config.model = dict(_SMALL, d_model=32, dim_feedforward=32)
        config.input.update(image_size=64, max_side=160, threads=1)
        config.hard_negatives = dict(count=2, pool_per_example=1, min_score=0.0)
        config.batch_size = 4
        config.total_steps = 4
        config.optimizer = dict(name="adam", learning_rate=1e-3, schedule="constant", trainable=("transformer",))
        config.log_every = 1
        config.eval_every = 4
        config.eval_pairs = 4
        config.checkpoint_every = 2
        config.keep_checkpoints = 2
    return config
