"""Learning-rate schedules and input preprocessing: the closed forms against torch's schedulers,
the population trainer against the reference loop for every schedule (with and without
warm-up), optimizer and loss, and the training split's statistics.

Tolerances are those of test_population (float32 round-off between two implementations, far
below what a wrong lr in any epoch would give).
"""

from __future__ import annotations

import itertools

import pytest
import torch

from engine.spec import TrialConfig, lr_at, lr_curve
from engine.spec.config import DataConfig
from engine.spec.space import LOSSES, OPTIMIZERS, SCHEDULES
from engine.train import Trial, compile_available, load_splits, train_population, train_reference
from engine.train import data as data_module
from engine.train.reference import make_scheduler

pytestmark = pytest.mark.numerics

DATA = DataConfig(train_size=200, val_size=100)
ATOL, RTOL = 2e-5, 1e-4


def torch_lrs(cfg: TrialConfig) -> list[float]:
    """The lr of each epoch as torch's schedulers give it (stepped after each epoch)."""
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=cfg.lr)
    scheduler = make_scheduler(cfg, opt)
    out = []
    for _ in range(cfg.epochs):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        if scheduler is not None:
            scheduler.step()
    return out


@pytest.mark.parametrize(("schedule", "warmup", "epochs"),
                         list(itertools.product(SCHEDULES, [0, 1, 3], [1, 2, 7, 20])))
def test_closed_form_is_torchs_schedulers(schedule, warmup, epochs):
    cfg = TrialConfig(lr=0.037, schedule=schedule, warmup_epochs=warmup, epochs=epochs,
                      gamma=0.3, step_epochs=2, min_lr=0.001)
    ours, theirs = lr_curve(cfg), torch_lrs(cfg)
    assert ours == pytest.approx(theirs, rel=1e-12)
    # rounded to float32 as the step uses them: the same numbers
    assert torch.tensor(ours).float().tolist() == torch.tensor(theirs).float().tolist()


def test_schedule_shapes():
    base = dict(lr=0.1, epochs=10)
    assert lr_curve(TrialConfig(**base)) == [0.1] * 10
    step = lr_curve(TrialConfig(**base, schedule="step", gamma=0.5, step_epochs=4))
    assert step == pytest.approx([0.1] * 4 + [0.05] * 4 + [0.025] * 2)
    cos = lr_curve(TrialConfig(**base, schedule="cosine", min_lr=0.01))
    assert cos[0] == 0.1 and cos[-1] > 0.01 and all(a > b for a, b in itertools.pairwise(cos))
    warm = lr_curve(TrialConfig(**base, schedule="cosine", warmup_epochs=3))
    assert warm[:4] == pytest.approx([0.025, 0.05, 0.075, 0.1])
    assert lr_at(TrialConfig(**base, warmup_epochs=2), 5) == 0.1


def test_old_stored_configs_load_as_constant_and_none():
    stored = {"data": {"dataset": "spirals", "noise": 0.4}, "model": {"hidden": [10]},
              "train": {"optimizer": "sgd", "lr": 0.01, "epochs": 10}}
    cfg = TrialConfig.from_dict(stored)
    assert (cfg.schedule, cfg.warmup_epochs, cfg.data.preprocess) == ("constant", 0, "none")
    assert TrialConfig.from_dict(cfg.to_dict()) == cfg


# --- the population trainer against the reference loop -------------------------------------


def scheduled_trials() -> list[Trial]:
    """Every schedule with and without warm-up, crossed with every optimizer and loss (cycled),
    weight decay on some (AdamW's decoupled decay follows the lr), different epoch counts and a
    partial last batch, all in one population where they share a batch size."""
    trials = []
    combos = list(itertools.product(SCHEDULES, [0, 2], OPTIMIZERS))
    for i, (schedule, warmup, opt) in enumerate(combos):
        lr = 0.01 if opt in ("adam", "adamw", "rmsprop") else 0.2
        cfg = TrialConfig(data=DATA, hidden=(4 + i % 5,), optimizer=opt, lr=lr,
                          loss=LOSSES[i % len(LOSSES)], schedule=schedule, warmup_epochs=warmup,
                          epochs=4 + i % 2, gamma=0.5, step_epochs=1 + i % 2,
                          min_lr=0.001 * (i % 2), weight_decay=0.05 * (i % 3 == 0),
                          momentum=0.5 if opt in ("sgd", "rmsprop") and i % 2 else 0.0)
        trials.append(Trial(cfg, 500 + i))
    trials.append(Trial(TrialConfig(data=DATA, hidden=(24, 20), activation="tanh",
                                    optimizer="adamw", lr=0.01, weight_decay=0.1, epochs=4,
                                    schedule="cosine", warmup_epochs=1), 7))  # wide layout
    trials.append(Trial(TrialConfig(data=DATA, batch_size=32, lr=0.3, epochs=4,
                                    schedule="step", step_epochs=1, gamma=0.5), 9))  # 6 * 32 + 8
    return trials


@pytest.fixture(scope="module")
def splits():
    return load_splits(DATA)


@pytest.fixture(scope="module")
def references(splits):
    return [train_reference(t, splits) for t in scheduled_trials()]


def assert_close(a, b):
    assert a.status == b.status == "completed"
    for (wa, ba), (wb, bb) in zip(a.weights, b.weights, strict=True):
        torch.testing.assert_close(wa, wb, atol=ATOL, rtol=RTOL)
        torch.testing.assert_close(ba, bb, atol=ATOL, rtol=RTOL)
    for ma, mb in zip(a.history, b.history, strict=True):
        assert ma.train_loss == pytest.approx(mb.train_loss, rel=1e-4, abs=1e-5)


def test_scheduled_population_equals_reference(splits, references):
    outcomes = train_population(scheduled_trials(), splits, compile=False)
    for ours, ref in zip(outcomes, references, strict=True):
        assert_close(ours, ref)


def test_a_wrong_schedule_is_caught(splits, references, monkeypatch):
    """The comparison has teeth: ignoring the schedule (a constant lr) fails it."""
    from engine.train.population import state

    monkeypatch.setattr(state, "lr_at", lambda c, e: c.lr)
    outcomes = train_population(scheduled_trials(), splits, compile=False)
    with pytest.raises(AssertionError):
        for ours, ref in zip(outcomes, references, strict=True):
            assert_close(ours, ref)


@pytest.mark.slow
@pytest.mark.compile
@pytest.mark.skipif(not compile_available(torch.device("cpu")), reason="no compiler")
def test_compiled_scheduled_population_equals_reference(splits, references):
    outcomes = train_population(scheduled_trials(), splits, compile=True)
    for ours, ref in zip(outcomes, references, strict=True):
        assert_close(ours, ref)


# --- preprocessing ------------------------------------------------------------------------


def test_standardize_uses_the_training_split_only():
    raw = load_splits(DATA)
    cfg = DataConfig(train_size=200, val_size=100, preprocess="standardize")
    scaled = load_splits(cfg)
    x = scaled.train.x.double()
    torch.testing.assert_close(x.mean(0), torch.zeros(2, dtype=torch.float64), atol=1e-6, rtol=0)
    torch.testing.assert_close(x.std(0, correction=0), torch.ones(2, dtype=torch.float64),
                               atol=1e-6, rtol=0)
    mean = raw.train.x.double().mean(0)
    std = raw.train.x.double().std(0, correction=0)
    torch.testing.assert_close(scaled.val.x, ((raw.val.x.double() - mean) / std).float())
    assert torch.equal(scaled.train.y, raw.train.y) and torch.equal(scaled.val.y, raw.val.y)
    test_raw = data_module.test_split(DATA)
    test = data_module.test_split(cfg)
    torch.testing.assert_close(test.x, ((test_raw.x.double() - mean) / std).float())


def test_minmax_maps_the_training_range_to_unit():
    raw = load_splits(DATA)
    scaled = load_splits(DataConfig(train_size=200, val_size=100, preprocess="minmax"))
    assert scaled.train.x.amin(0).tolist() == [0.0, 0.0]
    assert scaled.train.x.amax(0).tolist() == pytest.approx([1.0, 1.0])
    lo, hi = raw.train.x.double().amin(0), raw.train.x.double().amax(0)
    torch.testing.assert_close(scaled.val.x, ((raw.val.x.double() - lo) / (hi - lo)).float())


def test_preprocessed_trials_train_alike_in_both_trainers():
    cfg = DataConfig(train_size=200, val_size=100, preprocess="standardize")
    splits = load_splits(cfg)
    trial = Trial(TrialConfig(data=cfg, optimizer="adam", lr=0.01, epochs=2,
                              schedule="cosine"), 3)
    (ours,) = train_population([trial], splits, compile=False)
    assert_close(ours, train_reference(trial, splits))


# --- presets and studies ------------------------------------------------------------------

SCHEDULED_PRESET = """name = "knobs"
[data]
preprocess = "minmax"
[train]
schedule = "step"
warmup_epochs = 2
gamma = 0.5
step_epochs = 3
min_lr = 0.0001
[study]
strategy = "grid"
seeds = 1
[study.vary]
schedule = ["constant", "cosine"]
preprocess = ["none", "standardize"]
"""


def test_the_knobs_parse_vary_and_round_trip():
    from engine.presets import parse_preset, preset_to_toml
    from engine.study import strategies

    preset = parse_preset(SCHEDULED_PRESET)
    cfg = preset.config
    assert (cfg.schedule, cfg.warmup_epochs, cfg.gamma, cfg.step_epochs, cfg.min_lr,
            cfg.data.preprocess) == ("step", 2, 0.5, 3, 0.0001, "minmax")
    again = parse_preset(preset_to_toml(preset))
    assert again.config == cfg and again.study == preset.study
    planned = strategies.plan(cfg, preset.study)
    pairs = {(t.config.schedule, t.config.data.preprocess) for t in planned.trials}
    assert pairs == {("constant", "none"), ("constant", "standardize"), ("cosine", "none"),
                     ("cosine", "standardize")}


def test_trials_that_differ_in_preprocess_are_different_data_groups():
    """The runner loads (and scales) the splits once per data section: a preprocess of its own
    is a group of its own, never another group's inputs."""
    from types import SimpleNamespace

    from engine.run import runner

    rows = [SimpleNamespace(config=TrialConfig(data=DataConfig(preprocess=p)).to_dict())
            for p in ("none", "standardize", "none", "minmax")]
    groups = runner._by_data(rows)
    assert sorted((d.preprocess, len(g)) for d, g in groups) == [
        ("minmax", 1), ("none", 2), ("standardize", 1)]


def test_scheduled_survivors_of_halving_are_bitwise_those_trained_without_it(splits):
    """Compacting a population keeps each survivor's schedule (AdamW's per-epoch decay
    included): its numbers are those of the same trial trained without halving."""
    from engine.study import halving

    class Pruner:
        rungs = halving.rungs(4, 2)

        def stop(self, epochs, trials, curves):
            by_config: dict[TrialConfig, list] = {}
            for t, c in zip(trials, curves, strict=True):
                by_config.setdefault(t.config, []).append(c)
            stopped = halving.decide(self.rungs, 2, by_config, epochs)
            return {n for n, t in enumerate(trials) if stopped.get(t.config) == epochs}

    trials = []
    for c in range(20):  # 40 trials: 64 lanes, 32 after the first rung
        opt = ("adamw", "sgd", "adam", "rmsprop")[c % 4]
        cfg = TrialConfig(data=DATA, optimizer=opt, lr=0.003 + 0.002 * c, epochs=4,
                          weight_decay=0.1, schedule=SCHEDULES[c % 3], warmup_epochs=c % 2,
                          step_epochs=1, gamma=0.5)
        trials += [Trial(cfg, 1000 + s) for s in range(2)]
    full = train_population(trials, splits, compile=False)
    halved = train_population(trials, splits, compile=False, pruner=Pruner())
    assert [len(o.history) for o in halved].count(1) == 20
    for a, b in zip(full, halved, strict=True):
        n = len(b.history)
        assert [m.val_loss for m in a.history[:n]] == [m.val_loss for m in b.history]
        assert [m.train_loss for m in a.history[:n]] == [m.train_loss for m in b.history]
