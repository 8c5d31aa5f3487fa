"""Progress bars for the long stages of a command (features, nearest neighbours, verification, grouping,
report): one ``tqdm`` line per stage on stderr with its count, rate and time left; ``enabled=False``
(``--quiet``) prints nothing. Results never go to stderr, so a bar never mixes with them.
"""

from __future__ import annotations

import sys

from tqdm import tqdm


def bar(total: int | None, stage: str, *, enabled: bool = True, unit: str = "it") -> tqdm:
    """A bar for ``stage`` of ``total`` ``unit``s; use as a context manager and call ``update(n)``."""
    return tqdm(total=total, desc=stage, unit=unit, disable=not enabled, file=sys.stderr, dynamic_ncols=True,
                mininterval=0.5, smoothing=0.1)
