"""PyTorch checkpoints of every family -> Flax Linen variables ``{"params": ..., "batch_stats": ...}``.

    variables = load_torch_checkpoint("moco_resnet50", "moco_v2_800ep_pretrain.pth.tar")
    features = build_model("moco_resnet50").apply(variables, images, train=False)

Importing this module registers every family: resnet18, resnet34, resnet50, moco_resnet50 (option
``last_stage``, default "layer3"; ``checkpoints.torchvision``); artminer (``artminer.weights``); ransac_flow
(``ransac_flow.weights``); segswap (``segswap.weights``); adain (two files, ``segswap.style.weights``).
The engine itself is ``artdup_jax.checkpoints``; torch is needed only to read ``.pth`` files.
Command line: ``python -m artdup_jax.convert FAMILY SRC.pth [SRC2.pth ...] OUT_DIR`` (or ``artdup convert``).
"""

from artdup_jax.artminer import weights as _artminer  # noqa: F401  (each import registers its families)
from artdup_jax.checkpoints import *  # noqa: F401,F403  (the engine's public names, one list: its __all__)
from artdup_jax import checkpoints as _checkpoints
from artdup_jax.ransac_flow import weights as _ransac_flow  # noqa: F401
from artdup_jax.segswap import weights as _segswap  # noqa: F401
from artdup_jax.segswap.style import weights as _style  # noqa: F401

__all__ = list(_checkpoints.__all__)
