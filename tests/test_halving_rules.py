"""Successive halving's pure parts: the rung schedule, the ranking of configurations by their
mean over seeds, the planned cost, the study's stored shape, and the preset rules and writer."""

from __future__ import annotations

import pytest

from engine.presets import PresetError, parse_preset, preset_to_toml
from engine.spec import KEPT_ON_RESUME, StudySpec, TrialConfig, TrialStatus, halving_rungs
from engine.study import halving


@pytest.mark.parametrize(("epochs", "reduction", "min_epochs", "rungs"), [
    (27, 3, 1, (1, 3, 9)),
    (30, 3, 1, (1, 3, 10)),
    (27, 3, 3, (3, 9)),
    (10, 2, 1, (1, 2, 5)),
    (2, 3, 1, ()),
    (9, 9, 1, (1,)),
])
def test_rungs_are_epochs_over_powers_of_the_reduction(epochs, reduction, min_epochs, rungs):
    assert halving_rungs(epochs, reduction, min_epochs) == rungs
    assert halving.rungs is halving_rungs


def test_configurations_are_ranked_by_their_mean_over_seeds():
    curves = {
        "a": [[0.9, 0.5], [0.1, 0.5]],  # mean 0.5 after epoch 1
        "b": [[0.6, 0.9], [0.6, 0.9]],  # 0.6: best at the first rung, though no seed beats a's
        "c": [[0.55, 0.0], [0.55, 0.0]],
        "d": [[0.7]],  # one seed diverged before epoch 1: counts as 0 -> mean 0.35
    }
    curves["d"].append([])
    assert halving.decide((1,), 2, curves, upto=1) == {"a": 1, "d": 1}
    assert halving.decide((1, 2), 2, curves, upto=2) == {"a": 1, "d": 1, "c": 2}
    assert halving.decide((1, 2), 2, curves, upto=1) == {"a": 1, "d": 1}  # later rungs wait


def test_at_least_one_configuration_goes_on_and_ties_break_by_key():
    curves = {k: [[0.5]] for k in ("z", "y", "x")}
    assert halving.decide((1,), 5, curves, upto=1) == {"y": 1, "z": 1}
    assert halving.kept(2, 3) == 1 and halving.kept(0, 3) == 0


def test_planned_cost_per_bracket():
    narrow = TrialConfig(epochs=9, hidden=(10,))
    configs = [narrow.replace(lr=0.01 * (i + 1)) for i in range(9) for _ in range(2)]
    wide = [TrialConfig(epochs=9, hidden=(64, 64), lr=0.01 * (i + 1)) for i in range(3)]
    spec = StudySpec(strategy="random", seeds=2, pruner="halving")
    spent, cost = halving.planned(configs + wide, spec)
    # bracket of 9 (x2 seeds): 9 x 1 + 3 x 2 + 1 x 6; bracket of 3 (1 seed): 3 x 1 + 1 x 8
    assert cost == halving.HalvingCost(2 * (9 + 6 + 6) + 3 + 8, 9 * 2 * 9 + 3 * 9)
    assert sum(c.epochs for c in spent) == cost.with_halving
    assert halving.planned(configs, StudySpec(strategy="random"))[1] is None


def test_the_pruned_status_is_finished_and_kept_on_resume():
    assert TrialStatus("pruned").is_finished() and TrialStatus("pruned").is_kept_on_resume()
    assert TrialStatus.PRUNED in KEPT_ON_RESUME


def test_a_study_without_a_pruner_keeps_its_stored_shape():
    assert "pruner" not in StudySpec(strategy="grid").to_dict()
    spec = StudySpec(strategy="grid", pruner="halving", reduction=4, min_epochs=2)
    assert StudySpec.from_dict(spec.to_dict()) == spec
    assert StudySpec.from_dict({"strategy": "grid"}).pruner == "none"  # stored before halving


PRESET = """\
[train]
epochs = {epochs}
[study]
strategy = "{strategy}"
seeds = {seeds}
pruner = "{pruner}"
reduction = {reduction}
min_epochs = {min_epochs}
[study.vary]
lr = [0.01, 0.1, 0.3]
"""


def text(**kw):
    values = dict(epochs=9, strategy="grid", seeds=2, pruner="halving", reduction=3,
                  min_epochs=1)
    values.update(kw)
    return PRESET.format(**values)


def problems(source: str) -> str:
    with pytest.raises(PresetError) as e:
        parse_preset(source, source="study.toml")
    return str(e.value)


def test_the_writer_round_trips_the_pruner():
    preset = parse_preset(text(reduction=2, min_epochs=2), source="study.toml")
    assert (preset.study.pruner, preset.study.reduction, preset.study.min_epochs) == \
        ("halving", 2, 2)
    again = parse_preset(preset_to_toml(preset), source="again.toml")
    assert again.study == preset.study
    plain = parse_preset(text(pruner="none"), source="study.toml")
    assert "pruner" not in preset_to_toml(plain)


@pytest.mark.parametrize(("kw", "where", "says"), [
    (dict(pruner="halvng"), "study.toml:6: study.pruner", "did you mean 'halving'"),
    (dict(reduction=1), "study.toml:7: study.reduction", ">= 2"),
    (dict(min_epochs=0), "study.toml:8: study.min_epochs", ">= 1"),
    (dict(strategy="sensitivity"), "study.toml:6: study.pruner", "not 'sensitivity'"),
    (dict(seeds='"auto"'), "study.toml:5: study.seeds", "fixed number of seeds"),
    (dict(epochs=2), "study.toml:2: train.epochs", "has no rung"),
    (dict(min_epochs=5), "study.toml:8: study.min_epochs", "has no rung"),
])
def test_preset_errors_name_file_line_and_key(kw, where, says):
    message = problems(text(**kw))
    assert where in message and says in message, message


def test_varying_epochs_is_refused():
    message = problems(text() + "epochs = [3, 9]\n")
    assert "study.vary.epochs" in message and "set train.epochs once" in message
