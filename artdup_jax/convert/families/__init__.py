"""Checkpoint families. Importing this package registers every family in ``core.FAMILIES``.

To add a family: write ``families/<name>.py`` that builds a ``core.Family`` and calls ``core.register``,
then import it below.
"""

from artdup_jax.convert.families import resnet  # noqa: F401
from artdup_jax.convert.families import ransac_flow  # noqa: F401
from artdup_jax.convert.families import segswap  # noqa: F401
from artdup_jax.convert.families import artminer  # noqa: F401
from artdup_jax.convert.families import adain  # noqa: F401
