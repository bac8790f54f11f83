"""Loss curves drawn with plotext inside Textual (textual-plotext; never plt.show())."""

from __future__ import annotations

from collections.abc import Sequence

from textual_plotext import PlotextPlot

from engine.store import Metric

Series = tuple[str, list[float], list[float]]  # label, epochs, values


def curve(metrics: Sequence[Metric], column: int) -> tuple[list[float], list[float]]:
    """Epochs (1-based) and one metric column (1 train loss, 2 val loss, 3 val acc), skipping
    the missing values a diverged epoch leaves."""
    xs, ys = [], []
    for m in metrics:
        y = m[column]
        if y is not None and (y > 0 or column == 3):
            xs.append(float(m[0] + 1))
            ys.append(float(y))
    return xs, ys


class LossPlot(PlotextPlot):
    """A few named curves; `draw` replaces what was shown."""

    def draw(self, title: str, series: Sequence[Series], *, log: bool = False,
             legend: bool = True, lr: Series | None = None) -> None:
        """`lr`: a learning-rate schedule drawn against the right-hand axis (one per plot)."""
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title(title)
        plt.xlabel("epoch")
        any_data = False
        for label, xs, ys in series:
            if xs:
                any_data = True
                plt.plot(xs, ys, label=label if legend else None, marker="braille")
        if lr is not None and lr[1] and any_data:
            plt.plot(lr[1], lr[2], label=lr[0] if legend else None, marker="dot",
                     yside="right", color="gray")
        if log and any_data:
            plt.yscale("log", yside="left")
        if not any_data:
            plt.title(f"{title} (no epochs yet)")
        self.refresh()


class ValuePlot(PlotextPlot):
    """Mean validation accuracy against one parameter's values, with the seed spread (± std)."""

    def draw(self, param: str, values: Sequence[str], means: Sequence[float | None],
             stds: Sequence[float | None]) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title(f"{param}: mean val acc (%) ± seed std")
        points = [(i + 1, 100 * m, 100 * (s or 0.0))
                  for i, (m, s) in enumerate(zip(means, stds, strict=False)) if m is not None]
        if points:
            xs, ys, errs = (list(c) for c in zip(*points, strict=False))
            plt.error(xs, ys, yerr=errs)
            plt.plot(xs, ys, marker="braille")
        plt.xticks(list(range(1, len(values) + 1)), list(values))
        self.refresh()
