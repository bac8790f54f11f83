"""Two presets side by side: every setting (differences highlighted), what each study would cost,
and the best mean validation accuracy of each one's latest finished study in the store."""

from __future__ import annotations

from typing import Any

from rich.markup import escape
from rich.table import Table
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Footer, Header, Static

from engine.presets import Preset
from engine.spec import BATCHED_STRATEGIES
from engine.store import Store, StoreError
from engine.study import analysis, report
from tui import services as actions
from tui.format import fmt_pct, fmt_value
from tui.screens.base import AppScreen


def settings(p: Preset) -> dict[str, Any]:
    """Everything a preset sets, flat: the trial's keys, then the study's."""
    study = p.study.to_dict()
    vary = study.pop("vary", {}) if study.get("strategy") != "single" else {}
    if study.get("strategy") not in ("random", *BATCHED_STRATEGIES):
        study.pop("samples", None)  # only random and tpe search read it
    if study.get("strategy") not in BATCHED_STRATEGIES:
        study.pop("batch", None)  # only a batched (tpe) study reads it
    out: dict[str, Any] = dict(p.config.flat())
    out.update({("study seed" if k == "seed" else k): v for k, v in study.items()})
    out.update({f"vary {k}": v for k, v in vary.items()})
    return out


def cost_cells(p: Preset) -> tuple[str, str]:
    try:
        c = actions.cost(p)
    except ValueError as e:  # a plan the engine refuses: say why in the cell
        return "-", f"[red]{e}[/]"
    return f"{c.strategy}, {c.trials_text()}", c.eta_text()


def best_of(store: Store, name: str) -> str:
    """The latest completed study of a preset (by name): its best configuration's mean acc."""
    done = [s for s in store.studies() if s.preset_name == name and s.status == "completed"]
    if not done:
        return "no finished study"
    study = max(done, key=lambda s: s.id)
    best = analysis.best_config(report.trial_results(store.trials(study.id)))
    if best is None:
        return f"study {study.id}: no results"
    return f"{fmt_pct(best.mean)} +- {100 * best.std:.1f} (study {study.id}, {best.n} seeds)"


def table_of(a: Preset, b: Preset, best: tuple[str, str] | None) -> Table:
    table = Table(header_style="bold", expand=True)
    table.add_column("")
    table.add_column(a.name)
    table.add_column(b.name)
    sa, sb = settings(a), settings(b)
    for key in dict.fromkeys([*sa, *sb]):
        # Values like [sgd,adam] would read as markup tags: escape them.
        va = escape(fmt_value(sa[key])) if key in sa else "-"
        vb = escape(fmt_value(sb[key])) if key in sb else "-"
        if va != vb:  # reversed text: visible without colour (NO_COLOR) too
            table.add_row(f"[b]{key}[/]", f"[reverse]{va}[/]", f"[reverse]{vb}[/]")
        else:
            table.add_row(f"[dim]{key}[/]", va, vb)
    ca, cb = cost_cells(a), cost_cells(b)
    table.add_section()
    table.add_row("[b]study size[/]", ca[0], cb[0])
    table.add_row("[b]ETA[/]", ca[1], cb[1])
    table.add_row("[b]best val acc[/]", *(best or ("reading...", "reading...")))
    return table


class PresetCompareScreen(AppScreen[None]):
    """Two presets: each setting side by side (differences in reverse video), what each study
    would cost before launch, and how each did, if the store holds a finished study of it."""

    BINDINGS = [Binding("escape", "app.pop_screen", "Back", id="back")]

    def __init__(self, a: Preset, b: Preset) -> None:
        super().__init__()
        self.a, self.b = a, b
        self.best: tuple[str, str] | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="preset-compare"):
            yield Static(table_of(self.a, self.b, None), id="preset-compare-table")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = f"{self.a.name} vs {self.b.name}"
        self.query_one("#preset-compare").focus()
        self._read_best()

    @work(thread=True, exclusive=True, exit_on_error=False, group="preset-best")
    def _read_best(self) -> None:
        store = self.app.store
        try:
            best = (best_of(store, self.a.name), best_of(store, self.b.name))
        except StoreError as e:
            best = (f"[red]{e}[/]", "")
        self.app.call_from_thread(self._show_best, best)

    def _show_best(self, best: tuple[str, str]) -> None:
        self.best = best
        self.query_one("#preset-compare-table", Static).update(table_of(self.a, self.b, best))
