"""``python -m artdup_jax.cli``: the ``artdup`` command."""

import sys

from artdup_jax.cli import main

sys.exit(main())
