"""``python -m artdup_jax.cli``: the ``artdup`` command."""

import sys

from artdup_jax.cli import command

sys.exit(command())
