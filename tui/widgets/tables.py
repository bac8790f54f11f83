"""Rich renderables for the results screen: the interaction heatmap and prediction scores."""

from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.text import Text

from tui.format import fmt_pct, fmt_value


def heat_style(value: float | None, lo: float, hi: float) -> str:
    """Red (worst) to green (best) background; text stays readable without colour (NO_COLOR)."""
    if value is None or hi <= lo:
        return ""
    t = (value - lo) / (hi - lo)
    red, green = int(200 * (1 - t)), int(160 * t + 40)
    return f"black on rgb({red},{green},60)"


def heatmap(inter: dict[str, Any]) -> Table:
    rows_name, cols_name = inter["row_param"], inter["col_param"]
    table = Table(title=f"mean val acc: {rows_name} (rows) x {cols_name} (columns)",
                  header_style="bold")
    table.add_column(f"{rows_name} \\ {cols_name}")
    for c in inter["col_values"]:
        table.add_column(fmt_value(c), justify="right")
    values = [v for row in inter["means"] for v in row if v is not None]
    lo, hi = (min(values), max(values)) if values else (0.0, 0.0)
    for r, row in zip(inter["row_values"], inter["means"], strict=False):
        table.add_row(fmt_value(r), *(Text(f" {fmt_pct(v)} ", style=heat_style(v, lo, hi))
                                      for v in row))
    return table


def predictions_table(scores: list[dict[str, Any]]) -> Table:
    table = Table(title="your predictions, scored", header_style="bold")
    table.add_column("parameter")
    table.add_column("verdict")
    for s in scores:
        hit = s.get("best_hit")
        mark = "[green]hit[/]" if hit else ("[red]miss[/]" if hit is False else "-")
        table.add_row(s["param"], f"{mark} {s['verdict']}")
    return table
