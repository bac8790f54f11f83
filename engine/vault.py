"""The test vault: one evaluation of one trial on the held-out test split, once per study.

This is the only module that calls `engine.data.test_split`. The record (trial, config, test and
validation accuracy, time) is written in the same transaction that checks the vault is unused, so
two attempts at once still leave exactly one record.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.config import TrialConfig
from engine.store import Store, StoreError, VaultUsed


class VaultRefused(StoreError):
    """The chosen trial cannot be evaluated (unfinished, failed, no weights)."""


def open_vault(store: Store, study_ref: str | int, trial_number: int) -> dict[str, Any]:
    """Evaluate the trial on the test split and record it. Raises VaultUsed if already opened."""
    import torch

    from engine.data import test_split
    from engine.reference import evaluate

    study = store.study(study_ref)
    existing = store.vault(study.id)
    if existing is not None:
        raise VaultUsed(_used_message(study.id, existing), existing)
    trial = store.trial(study.id, trial_number)
    if trial.status != "completed":
        raise VaultRefused(
            f"trial {trial_number} of study {study.id} is {trial.status}; only a completed "
            "trial can be evaluated on the test split"
        )
    weights = store.weights(trial.id)
    if weights is None:
        raise VaultRefused(f"trial {trial_number} of study {study.id} has no stored weights")
    config = TrialConfig.from_dict(trial.config)
    base_dir = Path(study.preset_path).parent if study.preset_path else None
    split = test_split(config.data, base_dir)
    tensors = [(torch.from_numpy(w), torch.from_numpy(b)) for w, b in weights]
    test_loss, test_acc = evaluate(tensors, config, split)
    return store.record_vault(study.id, trial_id=trial.id, trial_number=trial.number,
                              config=trial.config, test_acc=test_acc, test_loss=test_loss,
                              val_acc=trial.val_acc)


def _used_message(study_id: int, record: dict[str, Any]) -> str:
    return (
        f"the test vault of study {study_id} was already opened on {record.get('created')} "
        f"(trial {record.get('trial_number')}: test accuracy {record.get('test_acc', 0):.2%}); "
        "it can be opened once per study"
    )
