"""AdaIN (naoto0804 pytorch-AdaIN) -> ``artdup_jax.segswap.style.AdaINNetworks`` variables.

Two files, given in this order (``Family.sources``), whose keys get the prefixes ``vgg.`` and ``decoder.``:

  vgg      ``vgg_normalised.pth``: the state dict of the whole 53-module ``vgg`` nn.Sequential (``0.weight`` …
           ``51.bias``). Only the convs up to relu4_1 are used (indices 0, 2, 5, 9, 12, 16, 19, 22, 25, 29);
           the relu4_2 … relu5_4 convs (32, 35, 38, 42, 45, 48, 51) are known and ignored.
  decoder  ``decoder.pth`` (or SegSwap's ``Adain_decoder_iter160K.pth.tar``): the ``decoder`` Sequential's
           state dict, convs at 1, 5, 8, 11, 14, 18, 21, 25, 28. Accepted wrappers: a ``state_dict`` /
           ``model`` entry (handled by ``read_state_dict``), a ``decoder.`` sub-dict and a ``module.``
           (DataParallel) prefix.

Flax ``encoder/conv1_1`` <-> ``vgg.2``, ``decoder/conv4_1`` <-> ``decoder.1`` (tables in ``style.networks``).
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from artdup_jax.checkpoints.conversion import Family, register, rename_keys
from artdup_jax.segswap.style.networks import DECODER_LAYERS, ENCODER_LAYERS, AdaINNetworks

_FAMILY = "adain"
SOURCES = ("vgg", "decoder")
_UNUSED_VGG_CONVS = (32, 35, 38, 42, 45, 48, 51)  # relu4_2 … relu5_4, after the cut
_WRAPPERS = {"vgg": ("module.",), "decoder": ("module.", "decoder.")}  # stripped in this order


def _torch_indices() -> dict[str, dict[str, int]]:
    return {"encoder": {name: index for name, index, *_ in ENCODER_LAYERS},
            "decoder": {name: index for name, index, *_ in DECODER_LAYERS}}


def adain_module(module_path: tuple[str, ...]) -> str:
    """``("encoder", "conv1_1")`` -> ``"vgg.2"``; ``("decoder", "conv4_1")`` -> ``"decoder.1"``."""
    network, conv = module_path
    index = _torch_indices()[network][conv]
    return f"{'vgg' if network == 'encoder' else 'decoder'}.{index}"


def canonical_keys(state_dict: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Strips the wrappers below each source prefix: ``decoder.module.1.weight`` -> ``decoder.1.weight``."""
    def rename(key: str) -> str:
        source, _, rest = key.partition(".")
        for wrapper in _WRAPPERS.get(source, ()):
            if rest.startswith(wrapper):
                rest = rest[len(wrapper):]
        return f"{source}.{rest}"

    return rename_keys(_FAMILY, state_dict, rename)


def _build(**options):
    if options:
        raise TypeError(f"family {_FAMILY!r} takes no options, got {options}")
    return AdaINNetworks()


register(
    Family(
        name=_FAMILY,
        build_model=_build,
        torch_module=adain_module,
        ignore=lambda **_: (rf"^vgg\.({'|'.join(map(str, _UNUSED_VGG_CONVS))})\.(weight|bias)$",),
        normalise=canonical_keys,
        init_shape=(1, 16, 16, 3),
        description="AdaIN: vgg_normalised.pth (VGG to relu4_1) + decoder.pth, two files in that order",
        sources=SOURCES,
    )
)
