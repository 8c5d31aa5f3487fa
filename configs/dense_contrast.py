"""Dense contrastive features on synthetic homography pairs (the Foundation's end-to-end training task).

Variants: ``default`` (a real run), ``smoke`` (README demo: under two minutes on 2 CPU cores), ``tiny``
(the harness tests: seconds per run).
"""

import ml_collections


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    variant = arg or "default"
    config = ml_collections.ConfigDict()
    config.task = "dense_contrast"
    config.seed = 0

    config.model = dict(depth=18, last_stage="layer2", embed_dim=64)
    config.input = dict(image_size=128, feature_stride=8, max_corner_shift=0.12, threads=2)
    config.batch_size = 32
    config.total_steps = 5000
    # Adam at 1e-3 for a batch of 32; scaled linearly with the batch so variants keep the same dynamics.
    config.optimizer = dict(name="adam", learning_rate=1e-3 * config.batch_size / 32, schedule="cosine",
                            warmup_steps=100)
    config.log_every = 50
    config.eval_every = 1000
    config.eval_pairs = 64
    config.checkpoint_every = 500
    config.keep_checkpoints = 3

    if variant == "smoke":
        config.input.image_size = 64
        config.batch_size = 16
        config.total_steps = 300
        config.optimizer.learning_rate = 1e-3  # twice the linear scaling rule: a short run
        config.optimizer.warmup_steps = 5
        config.log_every = 10
        config.eval_every = 100
        config.eval_pairs = 32
        config.checkpoint_every = 100
        config.keep_checkpoints = 2
    elif variant == "tiny":
        config.model = dict(depth=18, last_stage="layer1", embed_dim=16)
        config.input = dict(image_size=32, feature_stride=4, max_corner_shift=0.1, threads=1)
        config.batch_size = 4
        config.total_steps = 12
        config.optimizer = dict(name="adam", learning_rate=1e-3, schedule="constant")
        config.log_every = 1
        config.eval_every = 0
        config.eval_pairs = 4
        config.checkpoint_every = 4
        config.keep_checkpoints = 2
    elif variant != "default":
        raise ValueError(f"unknown variant {variant!r}; use default, smoke or tiny")
    return config
