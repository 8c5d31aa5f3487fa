"""Dense encoder: ImageNet-normalised input → ResNet trunk → 1×1 projection → unit-norm cell embeddings."""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from artdup_jax.nn import resnet
from artdup_jax.nn.normalise import imagenet_normalise


class DenseEncoder(nn.Module):
    depth: int = 18
    last_stage: str = "layer2"
    embed_dim: int = 64

    @nn.compact
    def __call__(self, images, train: bool = False):
        """images (B, H, W, 3) float32 in [0, 1] → (B, H/s, W/s, embed_dim) unit-norm, s = trunk stride."""
        build = {18: resnet.resnet18, 34: resnet.resnet34, 50: resnet.resnet50}[self.depth]
        trunk = build(last_stage=self.last_stage, name="trunk")
        features = trunk(imagenet_normalise(images), train=train)
        embedding = nn.Conv(self.embed_dim, (1, 1), name="projection")(features)
        return embedding / jnp.maximum(jnp.linalg.norm(embedding, axis=-1, keepdims=True), 1e-12)
