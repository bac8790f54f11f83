"""A race's curves: each strategy's best validation accuracy so far against trial-epochs."""

from __future__ import annotations

from typing import Any

from textual_plotext import PlotextPlot


class RacePlot(PlotextPlot):
    """One line per strategy (the mean over study seeds); `draw` replaces what was shown."""

    def draw(self, result: dict[str, Any] | None) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plt.xlabel("trial-epochs spent")
        drawn = False
        for data in (result or {}).get("strategies", {}).values():
            xs = [x for x, y in zip(data["budget"], data["best"], strict=True) if y is not None]
            ys = [100 * y for y in data["best"] if y is not None]
            if xs:
                drawn = True
                plt.plot(xs, ys, label=data["label"], marker="braille")
        seeds = len((result or {}).get("seeds", []))
        plt.title("best validation accuracy (%) so far, mean over "
                  f"{seeds} study seed{'s' * (seeds != 1)}" if drawn
                  else "best validation accuracy so far (nothing found yet)")
        self.refresh()
