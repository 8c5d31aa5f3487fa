"""Style transfer: AdaIN over VGG relu4_1, the stylisation of SegSwap's synthetic pairs.

  variables = convert.load_variables(OUT)   # python -m artdup_jax.convert adain vgg_normalised.pth decoder.pth OUT
  out = stylise(variables, content, style, alpha)                # (B, H, W, 3) float32 [0, 1], NHWC
  styliser = PaintingStyliser(variables)                         # uint8 images at the paper's 512 working size
  painted = styliser(image, painting, alpha)                     # (H, W, 3) uint8 -> (H, W, 3) uint8

Modules:
  networks.py            the AdaIN encoder (VGG-19 to relu4_1) and decoder as Flax modules
  adain.py               AdaIN itself: encode, feature statistics, decode, ``stylise``, as jit-compiled functions
  painting_styliser.py   ``PaintingStyliser``: uint8 images in and out at the working size, statistics cached
  weights.py             the ``adain`` checkpoint family (vgg_normalised.pth + decoder.pth)
"""

from artdup_jax.segswap.style.adain import (
    adain,
    decode,
    encode,
    feature_statistics,
    init_variables,
    style_statistics,
    stylise,
    stylise_with_statistics,
)
from artdup_jax.segswap.style.networks import AdaINNetworks
from artdup_jax.segswap.style.painting_styliser import PaintingStyliser, load_painting_styliser

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
