"""What a user may predict about a hyperparameter's effect before a study, to score it after."""

from __future__ import annotations

EFFECT_SIZES = ("small", "medium", "large")
