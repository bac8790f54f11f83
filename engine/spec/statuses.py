"""The statuses of studies and trials, once: what each means and which are finished."""

from __future__ import annotations

from enum import Enum


class TrialStatus(str, Enum):
    """A trial's status. A str, so it compares equal to the text the store and `--json` hold."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    DIVERGED = "diverged"  # its loss became NaN or inf; frozen at the last finite step
    FAILED = "failed"  # its trainer raised; a resume trains it again
    INTERRUPTED = "interrupted"
    # stopped at a rung of successive halving (`study.pruner`), with its curve and weights
    # up to that epoch: finished, and never retrained on resume
    PRUNED = "pruned"

    def __str__(self) -> str:
        return self.value

    def is_finished(self) -> bool:
        """Training ended, for better or worse: the trial counts in the study's results."""
        return self in FINISHED_TRIALS

    def is_kept_on_resume(self) -> bool:
        """Trained to an end with its final weights stored: a resume never reruns it."""
        return self in KEPT_ON_RESUME


class StudyStatus(str, Enum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    INTERRUPTED = "interrupted"
    FAILED = "failed"

    def __str__(self) -> str:
        return self.value

    def is_finished(self) -> bool:
        """The study's runner ended (it may be resumed unless it completed)."""
        return self in FINISHED_STUDIES


FINISHED_TRIALS = frozenset({TrialStatus.COMPLETED, TrialStatus.DIVERGED, TrialStatus.FAILED,
                             TrialStatus.PRUNED})
KEPT_ON_RESUME = frozenset({TrialStatus.COMPLETED, TrialStatus.DIVERGED, TrialStatus.PRUNED})
FINISHED_STUDIES = frozenset({StudyStatus.COMPLETED, StudyStatus.INTERRUPTED, StudyStatus.FAILED})
TRIAL_STATUSES = tuple(s.value for s in TrialStatus)
STUDY_STATUSES = tuple(s.value for s in StudyStatus)
