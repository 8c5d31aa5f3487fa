"""Checkpoint paths given to the ``artdup`` command, checked before any work.

* ``check_checkpoint(path, family)``: a path that does not exist, a file that is neither a zip archive
  (``torch.save``) nor a pickle (legacy ``torch.save``), or a converted folder (``artdup convert``) whose
  variables are not those of ``family``'s model, raises ``CheckpointFileError`` (one line, names the path).
  ``.pth`` files of the wrong family are caught by the conversion itself (``CheckpointMismatchError``).
* ``families_matching(path)``: the families a ``.pth`` converts as, for the error message.
"""

from __future__ import annotations

import functools
import os
import warnings
import zipfile

PICKLE_PROTOCOL_BYTE = 0x80  # first byte of a pickle of protocol 2 or above (legacy torch.save)
ORBAX_METADATA = "_METADATA"  # the file that marks a folder written by convert.save_variables


class CheckpointFileError(ValueError):
    """A checkpoint path that cannot be a checkpoint; the message is one line and names the path."""


def check_checkpoint(path: str, family: str | None = None) -> None:
    """Raises ``CheckpointFileError`` unless ``path`` may hold a checkpoint (of ``family``, for a converted
    folder, when given)."""
    if os.path.isdir(path):
        if family is not None and os.path.isfile(os.path.join(path, ORBAX_METADATA)):
            problems = converted_folder_problems(path, family)
            if problems:
                matching = [name for name in _family_names() if name != family
                            and converted_folder_problems(path, name) == []]
                hint = f"; it matches family {' / '.join(repr(m) for m in matching)}" if matching else ""
                raise CheckpointFileError(f"{path}: converted variables do not match family {family!r} "
                                          f"({len(problems)} problem(s)), first: {problems[0]}{hint}")
        return
    if not os.path.exists(path):
        raise CheckpointFileError(f"{path}: no such checkpoint file or directory")
    if not os.path.isfile(path):
        raise CheckpointFileError(f"{path}: not a regular file")
    with open(path, "rb") as f:
        first = f.read(1)
    if not first:
        raise CheckpointFileError(f"{path}: empty file, not a checkpoint")
    if not zipfile.is_zipfile(path) and first[0] != PICKLE_PROTOCOL_BYTE:
        raise CheckpointFileError(f"{path}: not a PyTorch checkpoint (neither a torch.save zip archive nor a "
                                  "pickle)")


def _family_names() -> list[str]:
    from artdup_jax.checkpoints.conversion import FAMILIES

    return sorted(FAMILIES)


def _leaf_shapes(tree) -> dict[str, tuple[int, ...]]:
    import jax

    return {"/".join(str(getattr(k, "key", k)) for k in key_path): tuple(leaf.shape)
            for key_path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


@functools.lru_cache(maxsize=None)
def expected_variable_shapes(family: str) -> dict[str, tuple[int, ...]]:
    """``collection/module/.../leaf -> shape`` of ``family``'s model with its default options."""
    import jax
    import jax.numpy as jnp

    from artdup_jax.checkpoints.conversion import get_family

    spec = get_family(family)
    model = spec.build_model()
    abstract = jax.eval_shape(functools.partial(model.init, train=False), jax.random.key(0),
                              jax.ShapeDtypeStruct(spec.init_shape, jnp.float32))
    return _leaf_shapes(abstract)


def converted_folder_problems(path: str, family: str) -> list[str] | None:
    """One line per variable of a converted folder that is missing, unexpected or mis-shaped for ``family``
    (None when ``family``'s model cannot be built with default options, so nothing was checked)."""
    import orbax.checkpoint as ocp

    with ocp.StandardCheckpointer() as checkpointer:
        metadata = checkpointer.metadata(os.path.abspath(path))
    found = _leaf_shapes(getattr(metadata, "item_metadata", metadata))
    try:
        expected = expected_variable_shapes(family)
    except Exception:  # noqa: BLE001 - a family whose model needs options: not checked here
        return None
    return ([f"missing: {k} (expected shape {s})" for k, s in expected.items() if k not in found]
            + [f"unexpected: {k} (shape {s})" for k, s in found.items() if k not in expected]
            + [f"wrong shape: {k} (expected {s}, got {found[k]})" for k, s in expected.items()
               if k in found and found[k] != s])


def families_matching(path: str) -> list[str]:
    """The checkpoint families whose conversion accepts the ``.pth`` at ``path`` (for the error message)."""
    from artdup_jax.checkpoints.conversion import FAMILIES, CheckpointMismatchError, convert_state_dict
    from artdup_jax.checkpoints.torch_reader import read_state_dict

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            state_dict = read_state_dict(path)
    except Exception:  # noqa: BLE001 - only a hint for an error message already being reported
        return []
    matching = []
    for name in sorted(FAMILIES):
        try:
            convert_state_dict(name, state_dict)
            matching.append(name)
        except (CheckpointMismatchError, ValueError, KeyError, NotImplementedError):
            continue
    return matching
