"""The tpe strategy without training: the space as Optuna distributions, deterministic asks,
no duplicates, the plan's first batch, presets, the cost line and the CLI's JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from engine.presets import PresetError, parse_preset, preset_to_toml, with_overrides
from engine.spec import ExitCode, Range, StudySpec, TrialConfig
from engine.study import samplers, strategies
from tui import services as actions

pytest.importorskip("optuna")
from optuna.distributions import (
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

TPE = """\
name = "tiny-tpe"
[data]
train_size = 200
val_size = 100
test_size = 100
[train]
epochs = 2
[study]
strategy = "tpe"
samples = 6
batch = 2
seeds = 2
[study.vary]
lr = { min = 0.001, max = 1.0, log = true }
hidden = [[5], [10]]
optimizer = ["sgd", "adam"]
"""

VARY: dict[str, Any] = {
    "lr": Range(0.001, 1.0, True), "momentum": Range(0.0, 0.9),
    "batch_size": Range(8, 256, True), "epochs": Range(2.0, 9.0),
    "hidden": [(10,), (10, 10)], "optimizer": ["sgd", "adam"],
}


def test_the_space_maps_to_optuna_distributions() -> None:
    dists = samplers.distributions(VARY)
    assert dists["lr"] == FloatDistribution(0.001, 1.0, log=True)
    assert dists["momentum"] == FloatDistribution(0.0, 0.9, log=False)
    assert dists["batch_size"] == IntDistribution(8, 256, log=True)
    assert dists["epochs"] == IntDistribution(2, 9)  # an integer parameter's range
    assert dists["hidden"] == CategoricalDistribution(["[10]", "[10, 10]"])
    assert dists["optimizer"] == CategoricalDistribution(["sgd", "adam"])
    # the stored form of a range (StudySpec.to_dict) maps the same way
    assert samplers.distributions({"lr": {"min": 0.001, "max": 1.0, "log": True}}) == {
        "lr": dists["lr"]}
    with pytest.raises(ValueError, match=r"study\.vary\.seeds"):
        samplers.distributions({"seeds": [1, 2]})


def _ask(seed: int, history: list[tuple[dict[str, Any], float | None]], n: int = 4,
         vary: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    return samplers.propose("tpe", vary or VARY, TrialConfig(), history, n, seed, startup=4)


def test_the_same_seed_and_history_ask_the_same_batch() -> None:
    first = _ask(1, [])
    history = [(values, 0.5 + 0.1 * i) for i, values in enumerate(first)]
    assert _ask(2, history) == _ask(2, history)
    assert _ask(2, history) != _ask(3, history)
    for values in _ask(2, history):  # hp-tui's normalised values, inside the ranges
        assert isinstance(values["hidden"], tuple) and isinstance(values["batch_size"], int)
        assert 0.001 <= values["lr"] <= 1.0 and values["optimizer"] in ("sgd", "adam")


def test_asks_never_repeat_a_trained_configuration_and_stop_when_none_is_left() -> None:
    vary = {"hidden": [(5,), (10,)], "optimizer": ["sgd", "adam"]}
    every = [{"hidden": h, "optimizer": o} for h in [(5,), (10,)] for o in ["sgd", "adam"]]
    left = _ask(0, [(v, 0.6) for v in every[:3]], n=4, vary=vary)
    assert left == [every[3]]
    assert _ask(0, [(v, 0.6) for v in every], vary=vary) == []
    batch = _ask(0, [], n=4, vary=vary)
    assert sorted(map(repr, batch)) == sorted(map(repr, every))  # four different ones


def test_a_failed_configuration_is_told_as_failed() -> None:
    got = _ask(5, [({**_ask(1, [], n=1)[0]}, None)], n=2)
    assert len(got) == 2


def test_a_batch_size_above_the_data_is_clamped() -> None:
    config = TrialConfig().replace(train_size=50)
    got = samplers.propose("tpe", {"batch_size": Range(8, 256, True)}, config, [], 6, 0, 6)
    assert all(v["batch_size"] <= 50 for v in got)


def test_the_plan_is_the_first_batch_of_random_and_count_is_the_budget() -> None:
    preset = parse_preset(TPE)
    plan = strategies.plan(preset.config, preset.study)
    assert plan.n_trials == 4 and strategies.count(preset.config, preset.study) == 12
    rand = strategies.plan(preset.config, StudySpec(**{**preset.study.__dict__,
                                                       "strategy": "random", "samples": 2}))
    assert [(t.config, t.seed) for t in plan.trials] == [(t.config, t.seed) for t in rand.trials]
    assert strategies.count_range(preset.config, preset.study) == (12, 12)
    assert "tpe" not in strategies.counts_by_strategy(preset.config, preset.study)


def test_cost_says_batches_in_sequence() -> None:
    cost = actions.cost(parse_preset(TPE))
    assert (cost.trials, cost.batches, cost.batch) == (12, 3, 2)
    assert cost.line().startswith("tpe: 12 trials, ETA ~")
    assert "(in 3 sequential batches of 2)" in cost.line()
    assert {"batches", "batch", "trials", "seconds"} <= set(cost.to_dict())
    one = actions.cost(parse_preset(TPE.replace("samples = 6", "samples = 2")))
    assert one.seconds < cost.seconds


def test_the_writer_round_trips_batch() -> None:
    preset = parse_preset(TPE)
    text = preset_to_toml(preset)
    assert "batch = 2" in text and parse_preset(text).study == preset.study
    grid = parse_preset("[study]\nstrategy = 'grid'\n[study.vary]\nlr = [0.1, 0.2]\n")
    assert "\nbatch =" not in preset_to_toml(grid)  # the default, and only tpe reads it


def test_overrides_set_batch_and_name_the_flag() -> None:
    preset = parse_preset(TPE)
    assert with_overrides(preset, batch=3).study.batch == 3
    with pytest.raises(PresetError) as e:
        with_overrides(preset, batch=0)
    assert "--batch" in str(e.value)
    with pytest.raises(PresetError) as e:
        with_overrides(preset, seeds="auto")
    assert 'seeds = "auto" does not work with study.strategy = "tpe"' in str(e.value)
    grid = parse_preset("[study]\nstrategy = 'grid'\n[study.vary]\nlr = [0.1, 0.2]\n")
    with pytest.raises(PresetError) as e:
        with_overrides(grid, strategy="tpe", seeds="auto")
    assert "does not work with --strategy tpe" in str(e.value)


def test_missing_optuna_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    from tui.cli import main

    monkeypatch.setattr(samplers, "installed", lambda: False)
    with pytest.raises(samplers.SamplerMissing, match=r"pip install 'hp-tui\[tpe\]'"):
        samplers.require("tpe")
    samplers.require("random")  # only the sampling strategies need it
    (tmp_path / "p.toml").write_text(TPE)
    code = main(["run", str(tmp_path / "p.toml"), "--store", str(tmp_path / "s.db")])
    err = capsys.readouterr().err
    assert code == ExitCode.INVALID_INPUT and "needs Optuna" in err and "Traceback" not in err
    assert not (tmp_path / "s.db").exists()  # refused before anything is written


def test_presets_json_adds_batches(capsys: pytest.CaptureFixture[str]) -> None:
    from tui.cli import main

    assert main(["presets", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    tpe = rows["tpe_search"]
    assert (tpe["strategy"], tpe["trials"], tpe["trials_max"], tpe["batches"]) == (
        "tpe", 32, 32, 4)
    assert rows["tiny"]["batches"] is None and "trials" in rows["tiny"]


def test_the_run_screen_shows_a_batch_as_its_reason() -> None:
    from engine.store import RoundRow
    from tui.screens.run import RunScreen

    row = RoundRow(1, 2, 2, [2, 3], 4, "batch 2 of 3: 2 configurations asked of tpe", "")

    class Study:
        strategy = "tpe"

    assert RunScreen._round_line(row, Study()) == row.reason  # type: ignore[arg-type]
    Study.strategy = "sensitivity"
    assert RunScreen._round_line(row, Study()).endswith("(2 seeds)")  # type: ignore[arg-type]
