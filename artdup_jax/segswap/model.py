"""SegSwap = frozen MoCo-v2 ResNet-50 (layer3) + co-segmentation transformer.

Variables (what ``convert.load_torch_checkpoint("segswap", pth)`` and ``init_segswap`` return)::

  {"params":      {"backbone": <ResNet-50 trunk params>, "transformer": <CoSegmentationTransformer params>},
   "batch_stats": {"backbone": <BN running statistics>}}

The backbone always runs in inference mode (running BN statistics); training only updates
``params["transformer"]``. The jit-compiled forward functions (``predict``, ``extract_features``,
``predict_from_features``) are in ``inference``.

Images: ``(B, H, W, 3)`` float32 RGB in [0, 1], ImageNet-normalised inside. H and W should be multiples of
16 (stride of layer3), so that cell j covers pixels [16j, 16j + 16) and its centre is (j + 0.5) / w.
On GPUs, float32 convs and matmuls may run at reduced precision; wrap parity checks in
``jax.default_matmul_precision("highest")``.
"""

from __future__ import annotations

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp

from artdup_jax.nn.normalise import imagenet_normalise
from artdup_jax.nn.resnet import resnet50
from artdup_jax.segswap.transformer import SMALL, CoSegmentationTransformer, TransformerConfig

L2_EPS = 1e-12
STRIDE = 16


def l2_normalise(features: jnp.ndarray, eps: float = L2_EPS) -> jnp.ndarray:
    """``x / max(|x|_2, eps)`` over the last (channel) axis, as torch ``F.normalize``."""
    norm = jnp.sqrt(jnp.sum(jnp.square(features), axis=-1, keepdims=True))
    return features / jnp.maximum(norm, eps)


class SegSwap(nn.Module):
    """Backbone + transformer. ``__call__(source, target=None, ...)`` runs a pair (or a self-pair).

    ``train`` only switches the transformer's dropout on (needs a ``"dropout"`` rng); the backbone is
    frozen in inference mode either way.
    """

    config: TransformerConfig = SMALL

    def setup(self):
        self.backbone = resnet50(last_stage="layer3")
        self.transformer = CoSegmentationTransformer(self.config)

    def features(self, images: jnp.ndarray) -> jnp.ndarray:
        """``(B, H, W, 3)`` RGB in [0, 1] -> L2-normalised layer3 features ``(B, H/16, W/16, 1024)``."""
        chex.assert_rank(images, 4)
        chex.assert_axis_dimension(images, -1, 3)
        return l2_normalise(self.backbone(imagenet_normalise(images), train=False))

    def transform(self, features_source, features_target, key_mask_source=None, key_mask_target=None,
                  train: bool = False) -> tuple[jnp.ndarray, jnp.ndarray]:
        """Transformer on precomputed features; see ``CoSegmentationTransformer``."""
        return self.transformer(features_source, features_target, key_mask_source, key_mask_target,
                                deterministic=not train)

    def __call__(self, source, target=None, key_mask_source=None, key_mask_target=None, train: bool = False):
        if target is None:
            target = source
        features_source = self.features(source)
        features_target = self.features(target)
        out_source, out_target = self.transform(features_source, features_target, key_mask_source,
                                                key_mask_target, train)
        return {"source": out_source, "target": out_target,
                "features_source": features_source, "features_target": features_target}


def init_segswap(rng: jax.Array, image_size: tuple[int, int] = (64, 64), config: TransformerConfig = SMALL) -> dict:
    """Fresh variables (PyTorch-default inits, identity BN statistics); see the module docstring for layout.

    ``image_size`` only sets the shapes traced at init; the variables work at any size.
    """
    height, width = image_size
    return jax.jit(SegSwap(config).init)(rng, jnp.zeros((1, height, width, 3), jnp.float32))
