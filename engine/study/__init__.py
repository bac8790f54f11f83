"""Studies as plans and answers, from configs and the store alone (no torch): strategies plan the
trials, analysis says which hyperparameters matter, eta prices a plan, report is the study as
data (what `show --json`, the CLI tables and the app read)."""

from __future__ import annotations

from engine.study.decisions import ALPHA, NEGLIGIBLE
from engine.study.report import (
    StudyReport,
    TrialReport,
    changes,
    flat_config,
    study_report,
    varying_keys,
)
from engine.study.strategies import trial_steps

__all__ = [
    "ALPHA",
    "NEGLIGIBLE",
    "StudyReport",
    "TrialReport",
    "changes",
    "flat_config",
    "study_report",
    "trial_steps",
    "varying_keys",
]
