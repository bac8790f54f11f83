"""The ETA shown before a study starts: a cost model, rescaled by this machine's past runs."""

from __future__ import annotations

import pytest

from engine.spec.config import TrialConfig
from engine.study import eta

NOTEBOOK = TrialConfig()


def test_more_trials_in_one_population_cost_less_than_proportionally() -> None:
    one = eta.model_seconds([NOTEBOOK])
    many = eta.model_seconds([NOTEBOOK] * 64)
    assert one < many < 64 * one  # the per-step dispatch is shared by the population


def test_populations_spread_over_workers_but_never_below_the_longest() -> None:
    configs = [NOTEBOOK, NOTEBOOK.replace(batch_size=20), NOTEBOOK.replace(hidden=[10, 10])]
    alone = eta.model_seconds(configs, workers=1)
    spread = eta.model_seconds(configs, workers=2)
    assert spread < alone
    assert spread >= eta.model_seconds([NOTEBOOK.replace(hidden=[10, 10])], workers=1)


def test_past_runs_rescale_the_training_part_only() -> None:
    configs = [NOTEBOOK] * 8
    default = eta.estimate(configs)
    assert "default" in default.source
    training = default.seconds - eta.STARTUP_S
    twice = eta.estimate(configs, past=[(2.0, 1.0), (4.0, 2.0)])
    assert twice.seconds == pytest.approx(eta.STARTUP_S + 2 * training)
    assert "2 past runs" in twice.source
    # a past run whose training took no time cannot calibrate anything
    assert eta.estimate(configs, past=[(0.0, 1.0)]).seconds == default.seconds


def test_human_readable_durations() -> None:
    assert eta.format_seconds(4.2) == "4.2 s"
    assert eta.format_seconds(42) == "42 s"
    assert eta.format_seconds(600) == "10 min"
    assert eta.format_seconds(7200) == "2.0 h"
    assert eta.estimate([]).seconds == 0.0
