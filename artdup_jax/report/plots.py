"""Report plots as PNG files (matplotlib's Agg canvas: no display, no global pyplot state).

Written straight to their path: they go into a ``ReportDirectory``, which is atomic as a whole.
"""

from __future__ import annotations

import os
from typing import Mapping, Sequence

import numpy as np

SIZE_INCHES = (6.0, 3.4)
DPI = 100


def _figure():
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=SIZE_INCHES, dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _save(figure, path) -> str:
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    figure.savefig(path, format="png")
    return path


def bar_chart(path, labels: Sequence[str], series: Mapping[str, Sequence[float | None]], *, title: str,
              ylabel: str) -> str:
    """Grouped bars, one group per label and one bar per series (None: no bar). Returns ``path``."""
    figure = _figure()
    axes = figure.add_subplot()
    width = 0.8 / max(len(series), 1)
    x = np.arange(len(labels))
    for k, (name, values) in enumerate(series.items()):
        heights = np.array([np.nan if v is None else float(v) for v in values])
        axes.bar(x + (k - (len(series) - 1) / 2) * width, heights, width, label=name)
    axes.set_xticks(x, [str(label) for label in labels], rotation=30, ha="right", fontsize=8)
    axes.set_ylabel(ylabel)
    axes.set_title(title, fontsize=10)
    if len(series) > 1:
        axes.legend(fontsize=8)
    return _save(figure, path)


def histogram(path, values: Sequence[float], *, title: str, xlabel: str, threshold: float | None = None,
              bins: int = 30, log: bool = False) -> str:
    """Histogram of ``values``, with a dashed vertical line at ``threshold``. Returns ``path``."""
    figure = _figure()
    axes = figure.add_subplot()
    values = np.asarray(values, np.float64)
    if values.size:
        axes.hist(values, bins=bins, color="#4363d8", log=log)
    if threshold is not None:
        axes.axvline(threshold, color="#e6194b", linestyle="--", label=f"threshold {threshold:g}")
        axes.legend(fontsize=8)
    axes.set_xlabel(xlabel)
    axes.set_ylabel("count")
    axes.set_title(title, fontsize=10)
    return _save(figure, path)
