"""The decisions on studies really trained by the population trainer: a null problem (labels
drawn independently of the features, so no hyperparameter can change the validation accuracy
beyond luck) over several study seeds, and the moons, where a learning rate of 1e-5 is known
to learn nothing in a few epochs. The numbers come from training, so the claims hold for what
users will see."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from engine.spec import StudySpec, TrialConfig
from engine.study.analysis import TrialResult, impact
from engine.study.strategies import plan
from engine.train import Split, Splits, Trial, load_splits, train_population

pytestmark = [pytest.mark.slow, pytest.mark.numerics]

NULL_VARY: dict[str, Any] = {"lr": [0.003, 0.03], "activation": ["tanh"]}


def null_splits(seed: int = 0) -> Splits:
    """Features and labels independent of each other: nothing to learn."""
    g = torch.Generator().manual_seed(seed)

    def split(n: int) -> Split:
        return Split(torch.randn(n, 2, generator=g),
                     torch.randint(0, 2, (n,), generator=g).float())

    return Splits(split(300), split(1500))


def trained_impact(baseline: TrialConfig, spec: StudySpec, splits: Splits) -> Any:
    trials = plan(baseline, spec).trials
    outcomes = train_population([Trial(t.config, t.seed) for t in trials], splits)
    results = [TrialResult(t.number, t.config.flat(), t.replicate, o.status,
                           o.history[-1].val_acc if o.history else None)
               for t, o in zip(trials, outcomes, strict=True)]
    return impact(spec.strategy, baseline.flat(), spec.vary, results)


def test_a_null_problem_calls_nothing_matters_and_reaches_negligible() -> None:
    baseline = TrialConfig.from_dict({"model": {"hidden": [8]},
                                      "train": {"epochs": 3, "batch_size": 50}})
    splits = null_splits()
    studies = []
    for study_seed in range(20):
        spec = StudySpec(strategy="sensitivity", seeds=32, seed=study_seed, vary=NULL_VARY)
        studies.append([r.decision for r in trained_impact(baseline, spec, splits).rows])
    # At most 5% of studies call anything "matters": 4 or more of 20 would be a 1.6% event.
    assert sum("matters" in rows for rows in studies) <= 3, studies
    decided = [d for rows in studies for d in rows]
    assert decided.count("negligible") >= 0.75 * len(decided), studies


def test_a_learning_rate_known_to_matter_is_found_to_matter() -> None:
    baseline = TrialConfig.from_dict({
        "data": {"dataset": "moons", "train_size": 400, "val_size": 400, "noise": 0.1},
        "model": {"hidden": [16]},
        "train": {"optimizer": "adam", "lr": 0.03, "epochs": 8, "batch_size": 20}})
    spec = StudySpec(strategy="sensitivity", seeds=4, seed=0, vary={"lr": [1e-5]})
    splits = load_splits(baseline.data)
    row = trained_impact(baseline, spec, splits).rows[0]
    assert row.decision == "matters" and row.best == 0.03 and row.best_claimed
    assert row.interval is not None and row.interval[0] > 0.1
