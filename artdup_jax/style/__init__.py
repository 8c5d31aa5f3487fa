"""Style transfer: AdaIN over VGG relu4_1 (segswap.md §1.4), the stylisation of SegSwap's synthetic pairs.

  variables = convert.load_variables(OUT)   # python -m artdup_jax.convert adain vgg_normalised.pth decoder.pth OUT
  out = stylise(variables, content, style, alpha)                # (B, H, W, 3) float32 [0, 1], NHWC
  styliser = PaintingStyliser(variables)                         # uint8 images at the spec's 512 working size
  painted = styliser(image, painting, alpha)                     # (H, W, 3) uint8 -> (H, W, 3) uint8
"""

from artdup_jax.style.adain import (
    adain,
    decode,
    encode,
    feature_statistics,
    init_variables,
    style_statistics,
    stylise,
    stylise_with_statistics,
)
from artdup_jax.style.networks import AdaINNetworks
from artdup_jax.style.painting_styliser import PaintingStyliser, load_painting_styliser

__all__ = [
    "AdaINNetworks",
    "PaintingStyliser",
    "adain",
    "decode",
    "encode",
    "feature_statistics",
    "init_variables",
    "load_painting_styliser",
    "style_statistics",
    "stylise",
    "stylise_with_statistics",
]
