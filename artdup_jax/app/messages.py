"""One-line errors and warnings of the ``artdup`` command, each naming the file it is about.

* ``one_line_warnings()``: while active, warnings print as ``warning: MESSAGE`` (no source line, no category).
* ``error_line(error, argv)``: the line to print for an exception the tool knows (unreadable image, missing
  file, checkpoint of the wrong family, file that is no checkpoint, IIIF input with no canvas to fetch); None
  for anything else (a bug: let the traceback show).
* ``checkpoint_arguments(argv)``: the checkpoint paths given to a command (checked by ``checkpoints.files``).
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings

from artdup_jax.data.images import ImageReadError
from artdup_jax.checkpoints.files import CheckpointFileError, families_matching

CHECKPOINT_OPTIONS = ("--checkpoint", "--coarse-checkpoint", "--artminer-checkpoint")
# Which option holds a checkpoint of each family (artdup_jax.app.align: fine --checkpoint, coarse --coarse-checkpoint).
FAMILY_OPTION = {"ransac_flow": "--checkpoint", "resnet50": "--coarse-checkpoint",
                 "moco_resnet50": "--coarse-checkpoint", "artminer": "--checkpoint"}


@contextlib.contextmanager
def one_line_warnings():
    """Within the block, ``warnings.warn`` prints ``warning: MESSAGE`` on stderr, once per message."""

    def show(message, category, filename, lineno, file=None, line=None):
        text = str(message).strip().splitlines()
        print(f"warning: {text[0] if text else category.__name__}", file=file or sys.stderr)

    with warnings.catch_warnings():  # restores the filters and showwarning on exit
        warnings.simplefilter("default")  # each distinct message once
        for quiet in (DeprecationWarning, PendingDeprecationWarning, ResourceWarning):  # library internals
            warnings.simplefilter("ignore", quiet)
        warnings.showwarning = show
        yield


def checkpoint_arguments(argv: list[str]) -> dict[str, str]:
    """``{option: value}`` of the checkpoint options in ``argv`` (``--opt VALUE`` or ``--opt=VALUE``)."""
    found = {}
    for index, word in enumerate(argv):
        option, sep, value = word.partition("=")
        if option in CHECKPOINT_OPTIONS:
            if sep:
                found[option] = value
            elif index + 1 < len(argv):
                found[option] = argv[index + 1]
    return found


def mismatch_line(error, path: str | None) -> str:
    """One line for a ``CheckpointMismatchError``: the file, the family expected, the first problem, and the
    families the file does match (when one does)."""
    where = f"{path}: " if path else ""
    line = (f"{where}checkpoint does not match family {error.family!r} ({len(error.problems)} problem(s)), first: "
            f"{error.problems[0] if error.problems else '?'}")
    if path and os.path.isfile(path):
        matching = families_matching(path)
        if matching:
            line += f"; it matches family {' / '.join(repr(m) for m in matching)}"
    return line


def error_line(error: BaseException, argv: list[str], *, checkpoint: str | None = None) -> str | None:
    """The ``error: ...`` line for an exception the tool expects from bad input, else None."""
    from artdup_jax.checkpoints.conversion import CheckpointMismatchError

    if isinstance(error, CheckpointMismatchError):
        options = checkpoint_arguments(argv)
        path = checkpoint or options.get(FAMILY_OPTION.get(error.family, ""))
        if path is None and len(options) == 1:
            path = next(iter(options.values()))
        return f"error: {mismatch_line(error, path)}"
    from artdup_jax.app.align import AlignmentError
    from artdup_jax.app.detect import QueryBoxError
    from artdup_jax.data.folders import ImageFolderError
    from artdup_jax.data.iiif.source import IIIFInputError

    from artdup_jax.checkpoints.cache import WEIGHTS_ERRORS

    if isinstance(error, (ImageReadError, CheckpointFileError, ImageFolderError, QueryBoxError, AlignmentError,
                          IIIFInputError, *WEIGHTS_ERRORS)):
        return f"error: {error}"
    if isinstance(error, (FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError,
                          PermissionError)):
        name = getattr(error, "filename", None)
        if name and getattr(error, "strerror", None):
            return f"error: {name}: {error.strerror.lower()}"
        return f"error: {str(error).splitlines()[0]}"
    return None
