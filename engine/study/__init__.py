"""Studies as plans and answers, from configs and the store alone (no torch): strategies plan the
trials, analysis says which hyperparameters matter, eta prices a plan, report is the study as
data (what `show --json`, the CLI tables and the app read), rounds adds seeds where the impact
table is still undecided (`seeds = "auto"`), samplers asks Optuna for a tpe study's next batch
(Optuna imported only there, only when asking), race and race_store plan and read a race
of strategies."""

from __future__ import annotations

from engine.study import halving, race, race_store
from engine.study.decisions import ALPHA, NEGLIGIBLE
from engine.study.report import (
    StudyReport,
    TrialReport,
    changes,
    flat_config,
    study_report,
    varying_keys,
)
from engine.study.rounds import (
    Round,
    decision,
    first_round,
    next_round,
    study_next_round,
)
from engine.study.samplers import SamplerMissing
from engine.study.strategies import trial_steps

__all__ = [
    "ALPHA",
    "NEGLIGIBLE",
    "Round",
    "SamplerMissing",
    "StudyReport",
    "TrialReport",
    "changes",
    "decision",
    "first_round",
    "flat_config",
    "halving",
    "next_round",
    "race",
    "race_store",
    "study_next_round",
    "study_report",
    "trial_steps",
    "varying_keys",
]
