"""The decision map: what a trial's network predicts over the plane, next to the validation points.

The forward pass is numpy, because the app never imports torch. Weights come from the store as
(W [out, in], b [out]) float32 pairs; every hidden layer is followed by the trial's activation, the
output is one logit, and class 1 means logit > 0 (the trainer's accuracy uses the same rule, so
the map's accuracy on the validation points equals the stored validation accuracy).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from textual.app import RenderResult
from textual_plotext import PlotextPlot

from engine.store import Store, TrialRow

LEGEND = ". predicted class 1    o validation class 0    x validation class 1"
FloatArray = NDArray[np.float64]
Weights = Sequence[tuple[NDArray[np.floating], NDArray[np.floating]]]

# numpy has no erf: math.erf vectorised keeps gelu exact (the trainer's erf form), and the
# maps are a few thousand points, so the Python loop costs a few milliseconds.
_erf = np.vectorize(math.erf, otypes=[np.float64])

# Without saved points (older studies) the plane's extent is a guess from the generators' scale.
DEFAULT_EXTENT = {"spirals": 17.0}
OTHER_EXTENT = 7.0


def activate(kind: str, h: FloatArray) -> FloatArray:
    if kind == "relu":
        return np.maximum(h, 0.0)
    if kind == "sigmoid":
        return 0.5 * (1.0 + np.tanh(0.5 * h))  # = 1 / (1 + e^-h), without overflow warnings
    if kind == "tanh":
        return np.tanh(h)
    if kind == "leaky_relu":
        return np.where(h > 0, h, 0.01 * h)
    if kind == "elu":
        return np.where(h > 0, h, np.expm1(np.minimum(h, 0.0)))
    if kind == "gelu":
        return 0.5 * h * (1.0 + _erf(h / math.sqrt(2.0)))
    if kind == "silu":
        return h * 0.5 * (1.0 + np.tanh(0.5 * h))
    raise ValueError(f"unknown activation {kind!r}")


def forward(weights: Weights, activation: str, x: NDArray[np.floating]) -> FloatArray:
    """Logits [n] of the network for inputs x [n, in]."""
    h = np.asarray(x, dtype=np.float64)
    last = len(weights) - 1
    with np.errstate(all="ignore"):  # a diverged trial's weights give inf/nan: reported, not raised
        for i, (w, b) in enumerate(weights):
            h = h @ np.asarray(w, dtype=np.float64).T + np.asarray(b, dtype=np.float64)
            if i < last:
                h = activate(activation, h)
    return h[:, 0]


def extent(points: NDArray[np.floating] | None, dataset: str) -> tuple[float, float, float, float]:
    """(x0, x1, y0, y1): the points' bounding box with a margin, else a guess for the dataset."""
    if points is None or not len(points):
        r = DEFAULT_EXTENT.get(dataset, OTHER_EXTENT)
        return -r, r, -r, r
    lo, hi = points.min(axis=0), points.max(axis=0)
    pad = 0.05 * np.maximum(hi - lo, 1e-6)
    (x0, y0), (x1, y1) = lo - pad, hi + pad
    return float(x0), float(x1), float(y0), float(y1)


def grid(box: tuple[float, float, float, float], nx: int, ny: int) -> FloatArray:
    """Cell centres of an nx x ny grid over the box, as points [nx * ny, 2]."""
    x0, x1, y0, y1 = box
    xs = x0 + (np.arange(nx) + 0.5) * (x1 - x0) / nx
    ys = y0 + (np.arange(ny) + 0.5) * (y1 - y0) / ny
    gx, gy = np.meshgrid(xs, ys)
    return np.column_stack([gx.ravel(), gy.ravel()])


@dataclass(frozen=True)
class MapData:
    """Everything one map needs; built off the UI thread from the store."""

    title: str
    weights: Weights | None
    activation: str
    dataset: str
    points: tuple[NDArray[np.floating], NDArray[np.floating]] | None
    n_features: int = 2

    def problem(self) -> str | None:
        """Why there is no map to draw, or None."""
        if self.weights is None:
            return "no weights stored: the trial has not finished (or failed)"
        if self.n_features != 2:
            return f"the data has {self.n_features} features; a map needs exactly 2"
        return None

    def accuracy(self) -> float | None:
        """The map's accuracy on the validation points (equals the stored val acc)."""
        if self.points is None or self.weights is None:
            return None
        x, y = self.points
        logits = forward(self.weights, self.activation, x)
        return float(np.mean((logits > 0) == (y > 0.5)))


def n_features(weights: Weights | None) -> int:
    return int(np.asarray(weights[0][0]).shape[1]) if weights else 2


class DecisionMap(PlotextPlot):
    """Predicted class 1 as '.' over the plane; validation points o (class 0) and x (class 1).
    The grid matches the widget's size, so the map is recomputed only when that changes."""

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.data: MapData | None = None
        self.message = "no trial selected"
        self._built: tuple[int, int, int] | None = None  # (width, height, id(data)) drawn

    def show_map(self, data: MapData) -> None:
        self.data, self._built = data, None
        self.refresh()

    def show_message(self, message: str) -> None:
        self.data, self.message, self._built = None, message, None
        self.refresh()

    def render(self) -> RenderResult:
        key = (self.size.width, self.size.height, id(self.data))
        if key != self._built:
            self._built = key
            self._draw()
        return super().render()

    def _draw(self) -> None:
        plt, d = self.plt, self.data
        plt.clear_data()
        plt.clear_figure()
        if d is None or d.problem() is not None or d.weights is None:
            plt.title(self.message if d is None else f"{d.title}: {d.problem()}")
            return
        xy = d.points[0] if d.points is not None else None
        box = extent(xy, d.dataset)
        # About one grid point per character cell of the plot area.
        nx, ny = max(self.size.width - 8, 10), max(self.size.height - 4, 5)
        cells = grid(box, nx, ny)
        logits = forward(d.weights, d.activation, cells)
        if not np.all(np.isfinite(logits)):
            plt.title(f"{d.title}: the network's outputs are not finite (diverged)")
            return
        ones = cells[logits > 0]
        if len(ones):
            plt.scatter(ones[:, 0].tolist(), ones[:, 1].tolist(), marker=".", color="orange")
        acc = d.accuracy()
        if d.points is not None:
            x, y = d.points
            for cls, marker, color in ((0, "o", "cyan"), (1, "x", "red")):
                sel = x[(y > 0.5) == bool(cls)]
                plt.scatter(sel[:, 0].tolist(), sel[:, 1].tolist(), marker=marker, color=color)
        plt.xlim(box[0], box[1])
        plt.ylim(box[2], box[3])
        plt.title(f"{d.title}: acc {100 * acc:.1f}% on val" if acc is not None
                  else f"{d.title} (no validation points saved)")


def load_map(store: Store, study_id: int, trial: TrialRow) -> MapData:
    """Read what a trial's map needs (a store read: call it from a worker)."""
    weights = store.weights(trial.id)
    data = trial.config["data"]
    return MapData(f"trial {trial.number}", weights, trial.config["model"]["activation"],
                   data["dataset"], store.points(study_id, data), n_features(weights))
