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


def test_live_eta_starts_from_the_prior_and_ends_on_the_measured_rate() -> None:
    live = eta.LiveEta(prior=100.0)
    assert live.left(0.0, 0, 1000) == 100.0  # nothing measured: the estimate made before
    assert live.left(10.0, 0, 1000) == 90.0  # counting down while the runner starts
    assert live.left(20.0, 100, 1000) == 80.0  # the first progress seen: still no rate
    # 100 trial-epochs per 10 s since then: 800 left = 80 s by the rate; prior says 70 s
    left = live.left(30.0, 200, 1000)
    assert left is not None and 70.0 < left < 80.0
    assert live.left(100.0, 900, 1000) == pytest.approx(10.0, abs=1.5)  # the rate dominates
    assert live.left(110.0, 1000, 1000) == 0.0


@pytest.mark.parametrize("prior", [100.0, None])
def test_live_eta_measures_again_when_progress_goes_back(prior: float | None) -> None:
    """A resume trains its interrupted trials from their start: the trial-epochs done drop
    (to 0 on a loaded machine, where no epoch is seen before the poll). That once raised a
    math domain error in the Run screen's poller, which closed the app."""
    live = eta.LiveEta(prior=prior)
    live.left(10.0, 100, 1000)
    assert live.left(20.0, 200, 1000) is not None
    after = [live.left(25.0, 0, 1000), live.left(30.0, 40, 1000), live.left(40.0, 140, 1000)]
    assert all(left is None or left >= 0 for left in after)
    assert after[2] is not None and after[2] > 0  # measured again, from the 40 seen at 30 s
    if prior is None:
        assert after[2] == pytest.approx(860 * 10 / 100)


def test_live_eta_with_a_wrong_prior_converges_to_the_rate() -> None:
    live = eta.LiveEta(prior=5.0)  # an uncalibrated guess, 10x too short
    live.left(0.0, 10, 1000)
    late = live.left(40.0, 810, 1000)  # 20 trial-epochs a second: 9.5 s to go
    assert late is not None and abs(late - 9.5) < 3.5
    assert eta.LiveEta(prior=None).left(1.0, 0, 10) is None  # nothing to say yet
    assert eta.format_clock(7) == "0:07" and eta.format_clock(3723) == "1:02:03"
