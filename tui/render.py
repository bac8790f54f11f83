"""Rich tables and exports for the headless commands, all built from `engine.study.report`'s dicts.

Colour follows rich's own rules (NO_COLOR, TERM=dumb, pipes), so output stays readable anywhere.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from engine.run import executors
from engine.spec import FINISHED_TRIALS, VARIABLE
from engine.study import NEGLIGIBLE, varying_keys
from tui.format import fmt_pct, fmt_value, markup_safe, styled_status

MAX_TRIAL_ROWS = 30


def _console() -> Console:
    return Console(soft_wrap=False)


def status_text(data: dict[str, Any]) -> str:
    """A study's status, saying when it is interrupted because its runner died."""
    gone = data.get("runner") == "gone" and data["status"] == "interrupted"
    return data["status"] + (" (runner gone)" if gone else "")


def print_study(data: dict[str, Any]) -> None:
    console = _console()
    name = f" '{markup_safe(data['name'])}'" if data.get("name") else ""
    place = executors.where(data.get("executor"), data.get("ray_address"))
    console.print(f"[bold]study {data['study']}{name}[/]: {markup_safe(data['preset'])}, "
                  f"{data['strategy']}, {status_text(data)}" + (f", {place}" if place else ""))
    for line in rounds_lines(data) + halving_lines(data):
        console.print(line, highlight=False)
    console.print(trials_table(data))
    if data.get("impact"):
        console.print(impact_table(data))
    if data.get("interaction"):
        console.print(interaction_table(data["interaction"]))
    for p in data.get("predictions") or []:
        console.print(f"prediction {markup_safe(p.get('param'))}: {markup_safe(p.get('verdict'))}")
    if data.get("vault"):
        print_vault(data["vault"], already=True, console=console)


def rounds_lines(data: dict[str, Any]) -> list[str]:
    """An adaptive study's rounds, one short line each ([] for a fixed study)."""
    return [f"{markup_safe(r['reason'])}: {r['seeds']} seeds"
            + (f", +{r['trials']} trials" if r.get("trials") else "")
            for r in data.get("rounds") or []]


def halving_lines(data: dict[str, Any]) -> list[str]:
    """A halving study's rungs and what pruning saved ([] without a pruner)."""
    if data.get("pruner") != "halving":
        return []
    rungs = ", ".join(str(r) for r in data.get("rungs") or []) or "none"
    full, saved = data.get("trial_epochs_full") or 0, data.get("trial_epochs_saved") or 0
    share = f" ({saved / full:.0%})" if full else ""
    return [f"halving (reduction {data.get('reduction')}): rungs after epochs {rungs}; "
            f"{data.get('pruned', 0)} trials pruned ({data.get('pruned_configs', 0)} "
            f"configurations), {saved:,} of {full:,} trial-epochs saved{share}; the impact "
            "table uses the configurations trained to the end"]


def varied_params(data: dict[str, Any]) -> list[str]:
    """Config keys whose value differs between trials (the columns worth showing)."""
    return varying_keys([t["config"] for t in data["trials"]])


def trials_table(data: dict[str, Any]) -> Table:
    # One-at-a-time trials differ from the baseline in one place: one "change" column says it
    # better than a column per parameter, and fits a narrow terminal.
    one_at_a_time = data["strategy"] == "sensitivity"
    params = ["change"] if one_at_a_time else varied_params(data)
    trials = sorted(data["trials"], key=lambda t: -(t["val_acc"] if t["val_acc"] is not None
                                                     else -1))
    shown = trials[:MAX_TRIAL_ROWS]
    caption = (f"best {len(shown)} of {len(trials)} trials by validation accuracy"
               if len(trials) > len(shown) else None)
    table = Table(title="trials", caption=caption, header_style="bold")
    table.add_column("id", justify="right")
    for p in params:
        table.add_column(p)
    # the outcome columns never shrink; the config columns give way on a narrow terminal
    table.add_column("seed #", justify="right", no_wrap=True)
    table.add_column("status", no_wrap=True, min_width=9)
    table.add_column("val acc", justify="right", no_wrap=True, min_width=6)
    table.add_column("val loss", justify="right", no_wrap=True, min_width=6)
    table.add_column("epochs", justify="right", no_wrap=True)
    for t in shown:
        cells = ([markup_safe(_change(t))] if one_at_a_time
                 else [markup_safe(fmt_value(t["config"].get(p))) for p in params])
        table.add_row(str(t["id"]), *cells,
                      str(t["replicate"]), styled_status(t["status"]),
                      fmt_pct(t["val_acc"]),
                      "-" if t["val_loss"] is None else f"{t['val_loss']:.4f}", str(t["epochs"]))
    return table


def change_label(changed: dict[str, Any]) -> str:
    """What a trial changes from the preset ("lr=0.1"), or "baseline"."""
    return ", ".join(f"{k}={fmt_value(v)}" for k, v in changed.items()) or "baseline"


def _change(trial: dict[str, Any]) -> str:
    return change_label(trial.get("changed") or {})


DECISION_STYLE = {"matters": "bold green", "negligible": "cyan", "undecided": "yellow"}


def impact_table(data: dict[str, Any]) -> Table:
    """One line per value tried, grouped by parameter (largest effect first): reads down a
    narrow terminal. Each group opens with its effect, the effect's interval and the decision;
    the best value is starred only when it beats every other one, and values tied for best
    are marked ~."""
    caption = " ".join(filter(None, [
        data.get("reading") and f"{data['reading']}.",
        "* best, ~ tied for best; intervals hold together for the whole study (95%).",
    ]))
    table = Table(title="impact of each hyperparameter", caption=caption, header_style="bold",
                  box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("parameter", no_wrap=True)
    table.add_column("value", min_width=8, overflow="fold")
    table.add_column("acc % ± sd", justify="right", no_wrap=True)
    table.add_column("n", justify="right", no_wrap=True)
    table.add_column("effect", justify="right", no_wrap=True)
    table.add_column("interval", justify="right", no_wrap=True)
    table.add_column("decision", no_wrap=True)
    negligible = float(data.get("negligible") or NEGLIGIBLE)
    scale = max([negligible * 2.5, *(min(r["interval"][1], 1.0) for r in data["impact"]
                                     if r.get("interval") and r["interval"][1] is not None)])
    for row in data["impact"]:
        decision = row.get("decision") or ("matters" if row["significant"] else "undecided")
        style = DECISION_STYLE.get(decision, "")
        summary = [fmt_pct(row["effect"]), interval_text(row.get("interval")),
                   f"[{style}]{markup_safe(row.get('verdict') or decision)}[/]"]
        bar = interval_bar(row.get("interval"), row["effect"], scale, negligible)
        detail = ["", bar, f"[dim]{decision_detail(row)}[/]"]
        tied = row.get("tied_best") or []
        values = zip(row["values"], row["means"], row["stds"], row["counts"], strict=False)
        for k, (value, mean, std, n) in enumerate(values):
            claimed = value == row["best"] and row.get("best_claimed", False)
            mark = " *" if claimed else " ~" if decision == "matters" and value in tied else ""
            shown = markup_safe(fmt_value(value)) + mark
            acc = "-" if mean is None else f"{100 * mean:.1f} ± {100 * (std or 0):.1f}"
            tail = summary if k == 0 else detail if k == 1 else ["", "", ""]
            table.add_row(row["param"] if k == 0 else "",
                          f"[bold]{shown}[/]" if claimed else shown, acc, str(n), *tail,
                          end_section=k == len(row["values"]) - 1)
    return table


def interval_text(interval: list[float] | tuple[float, float] | None) -> str:
    """An effect's interval in points of accuracy: "[3.1, 9.8]"."""
    if not interval or interval[0] is None or interval[1] is None:
        return "-"
    return f"[{100 * interval[0]:.1f}, {100 * interval[1]:.1f}]"


def interval_bar(interval: list[float] | tuple[float, float] | None, effect: float,
                 scale: float, negligible: float, width: int = 12) -> str:
    """The interval drawn to a common scale (0 on the left): ━ the interval, ┃ the effect, and
    ░ the negligible band below it, so "negligible" reads as an interval inside the band."""
    if not interval or interval[0] is None or interval[1] is None:
        return ""

    def cell(x: float) -> int:
        return min(width - 1, max(0, int(x / scale * width)))

    lo, hi, mid, band = cell(interval[0]), cell(interval[1]), cell(effect), cell(negligible)
    out = []
    for i in range(width):
        if i == mid:
            out.append("┃")
        elif lo <= i <= hi:
            out.append("━")
        else:
            out.append("░" if i < band else " ")
    return "[cyan]" + "".join(out) + "[/]"


def decision_detail(row: dict[str, Any]) -> str:
    """The line under a decision: when it was taken, or what would take it."""
    if row.get("decided_at"):
        return f"at {row['decided_at']} seeds"
    if row.get("seeds_needed"):
        return f"needs ~{row['seeds_needed']} seeds"
    return ""


def interaction_table(inter: dict[str, Any]) -> Table:
    names = [k for k in ("row_param", "col_param") if k in inter]
    rows_name = inter.get(names[0], "") if names else ""
    cols_name = inter.get(names[1], "") if len(names) > 1 else ""
    table = Table(title=f"mean val acc: {rows_name} x {cols_name}", header_style="bold")
    table.add_column(f"{rows_name} \\ {cols_name}")
    for c in inter.get("col_values", []):
        table.add_column(markup_safe(fmt_value(c)), justify="right")
    for r, values in zip(inter.get("row_values", []), inter.get("means", []), strict=False):
        table.add_row(markup_safe(fmt_value(r)), *(fmt_pct(v) for v in values))
    return table


def print_studies(rows: list[dict[str, Any]]) -> None:
    table = Table(title="studies", header_style="bold")
    for col in ("#", "name", "preset", "strategy", "status", "trials", "created"):
        table.add_column(col)
    for r in rows:
        counts = r["counts"]
        done = sum(counts.get(s, 0) for s in FINISHED_TRIALS)
        table.add_row(str(r["study"]), markup_safe(r["name"] or ""),
                      markup_safe(r["preset"] or ""), r["strategy"], status_text(r),
                      f"{done}/{r['trials']}", (r["created"] or "")[:19])
    _console().print(table)


def print_presets(rows: list[dict[str, Any]]) -> None:
    table = Table(title="presets", header_style="bold")
    for col in ("name", "source", "study", "description"):
        table.add_column(col)
    for r in rows:
        if "error" in r:
            study = "[red]invalid[/]"
            description = r["error"].splitlines()[0]
        else:
            study = f"{r['strategy']}, {r['trials']} trials"
            description = r["description"] or ""
        table.add_row(markup_safe(r["name"]), r["source"], study, markup_safe(description))
    _console().print(table)


def print_vault(record: dict[str, Any], already: bool, console: Console | None = None) -> None:
    console = console or _console()
    test, val = record.get("test_acc"), record.get("val_acc")
    gap = f", gap {100 * (val - test):+.1f} points" if test is not None and val is not None else ""
    head = "test vault (already opened)" if already else "test vault opened"
    console.print(f"[bold]{head}[/] {markup_safe(record.get('created', ''))}: trial "
                  f"{record.get('trial_number')}: test accuracy {fmt_pct(test)}, "
                  f"validation {fmt_pct(val)}{gap}")
    for e in record.get("earlier_evaluations") or []:
        name = f" ({markup_safe(e['name'])})" if e.get("name") else ""
        console.print(f"[yellow]this test split was evaluated before[/]: study {e['study']}"
                      f"{name}, trial {e['trial_number']}, {markup_safe(e['created'])}: test "
                      f"accuracy {fmt_pct(e['test_acc'])}")


def export_text(data: dict[str, Any], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(data, indent=2) + "\n"
    params = sorted({k for t in data["trials"] for k in t["config"]})
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out)
        outcome = ["seed", "status", "val_acc", "val_loss", "train_loss", "epochs"]
        writer.writerow(["id", *config_columns(params, outcome), *outcome])
        for t in data["trials"]:
            writer.writerow([t["id"], *(fmt_value(t["config"].get(p)) for p in params),
                             t["seed"], t["status"], t["val_acc"], t["val_loss"],
                             t["train_loss"], t["epochs"]])
        return out.getvalue()
    return _markdown(data)


def config_columns(keys: list[str], taken: list[str]) -> list[str]:
    """Column names for config keys: the bare key, or its dotted name (data.seed, train.epochs)
    where the bare one is also a column of the trial's own (its seed, the epochs it trained)."""
    return [(VARIABLE[k].dotted if k in VARIABLE else f"config.{k}") if k in taken else k
            for k in keys]


def _markdown(data: dict[str, Any]) -> str:
    varied = varied_params(data)
    lines = [f"# Study {data['study']}: {data['preset']} ({data['strategy']}, {data['status']})",
             ""]
    if data.get("impact"):
        lines += ["## Impact", "", f"_{data.get('reading')}_", "",
                  "| parameter | value | mean val acc | std | n |", "|---|---|---|---|---|"]
        for row in data["impact"]:
            for v, m, s, n in zip(row["values"], row["means"], row["stds"], row["counts"],
                                  strict=False):
                lines.append(f"| {row['param']} | {fmt_value(v)} | {fmt_pct(m)} | "
                             f"{fmt_pct(s)} | {n} |")
        lines += ["", "| parameter | best | effect | interval | decision | seeds |",
                  "|---|---|---|---|---|---|"]
        for row in data["impact"]:
            best = (fmt_value(row["best"]) if row.get("best_claimed")
                    else " or ".join(fmt_value(v) for v in row.get("tied_best") or []) or "-")
            lines.append(f"| {row['param']} | {best} | {fmt_pct(row['effect'])} | "
                         f"{interval_text(row.get('interval'))} | {row.get('verdict')} | "
                         f"{decision_detail(row)} |")
        lines.append("")
    header = [*config_columns(varied, ["seed", "status"]), "seed", "status", "val acc"]
    lines += ["## Trials", "", "| id | " + " | ".join(header) + " |",
              "|" + "---|" * (len(header) + 1)]
    for t in data["trials"]:
        cells = [str(t["id"]), *(fmt_value(t["config"].get(p)) for p in varied),
                 str(t["replicate"]), t["status"], fmt_pct(t["val_acc"])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


@contextmanager
def progress(total_epochs: int, n_trials: int) -> Iterator[Callable[[int, list[Any]], None]]:
    """A progress bar with ETA on stderr, counted in trial-epochs so that it moves while
    populations train (their trials all finish together); yields an update function."""
    from rich.progress import (
        BarColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (TextColumn("training"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
               TextColumn("{task.description}"), TimeElapsedColumn(), TextColumn("eta"),
               TimeRemainingColumn())
    with Progress(*columns, console=Console(file=sys.stderr), transient=True) as bar:
        task = bar.add_task("", total=max(1, total_epochs))

        def update(epochs_done: int, trials: list[Any]) -> None:
            counts = Counter(t.status for t in trials)
            finished = sum(counts[s] for s in FINISHED_TRIALS)
            extra = "".join(f", {counts[s]} {s}" for s in ("diverged", "failed", "pruned")
                            if counts[s])
            bar.update(task, completed=epochs_done,
                       description=f"{finished}/{n_trials} trials{extra}")

        yield update


def race_table(result: dict[str, Any]) -> None:
    """`hp-tui race`'s table: per strategy, what it trained and the best it found at the end."""
    table = Table(box=box.SIMPLE_HEAD, title=f"budget {result['budget']:,} trial-epochs per "
                  f"study, study seeds {', '.join(str(s) for s in result['seeds'])}")
    for title in ("strategy", "trials", "trial-epochs", "final best (mean)", "low - high"):
        table.add_column(title, justify="left" if title == "strategy" else "right")
    rows = sorted(result["strategies"].values(), key=lambda d: -(d["best"][-1] or 0.0))
    for data in rows:
        best, low, high = data["best"][-1], data["low"][-1], data["high"][-1]
        table.add_row(markup_safe(data["label"]), str(data["trials"]),
                      f"{data['trial_epochs']:,}", fmt_pct(best) if best is not None else "-",
                      f"{fmt_pct(low)} - {fmt_pct(high)}" if low is not None else "-")
    _console().print(table)
