"""A PyTorch checkpoint file (or several, for a family stored in parts) -> Flax variables."""

from __future__ import annotations

import os
from typing import Sequence

from artdup_jax.checkpoints.conversion import Family, convert_state_dict, get_family
from artdup_jax.checkpoints.torch_reader import read_state_dict


def load_torch_checkpoint(family: str | Family, path: str | os.PathLike | Sequence[str | os.PathLike],
                          **family_options) -> dict:
    """Reads a ``.pth`` file and converts it; see ``convert_state_dict``.

    A family stored as several files (``Family.sources``, e.g. adain: vgg, decoder) takes a sequence of
    paths, one per source in that order; each file's keys are prefixed with its source name.
    """
    family = get_family(family)
    paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    names = family.sources or ("",)
    if len(paths) != len(names):
        expected = ", ".join(family.sources) if family.sources else "one file"
        raise ValueError(f"family {family.name!r} takes {len(names)} checkpoint file(s) ({expected}), got {len(paths)}")
    state_dict = {}
    for name, file in zip(names, paths):
        prefix = f"{name}." if name else ""
        state_dict.update({prefix + key: value for key, value in read_state_dict(file).items()})
    return convert_state_dict(family, state_dict, **family_options)
