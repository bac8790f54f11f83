"""The test vault: one evaluation of one trial on the held-out test split, once per study.

This is the only module that calls `test_split`. The record (trial, config, test and
validation accuracy, time) is written in the same transaction that checks the vault is unused, so
two attempts at once still leave exactly one record.

The vault opens only on a study that has stopped training (a live runner would go on choosing
after the look) and on the data it trained on (a CSV that changed would give other test rows).
Other studies can share a test split (the same data, data seed and test size): their earlier
evaluations are listed, so that the look is not mistaken for a first one. The checks here are
torch-free; the CLI and the app make them before asking for confirmation.
"""

from __future__ import annotations

from typing import Any

from engine.datasets import changed_file, test_split_key
from engine.spec import TrialConfig
from engine.store import Store, StoreError, StudyRow, TrialRow, VaultUsed, pct
from engine.study import report


class VaultRefused(StoreError):
    """The vault cannot open now: the study still trains, its data changed, or the chosen trial
    cannot be evaluated (unfinished, failed, no weights)."""


def training_refusal(store: Store, study: StudyRow) -> str | None:
    """Why the study is not finished training, or None once nothing trains it."""
    lease = store.lease(study.id)
    runner = report.runner_state(study, lease)
    if runner == "alive" and lease is not None:
        return (f"study {study.id} is still training (runner pid {lease['pid']} on "
                f"{lease['host']}); the vault opens once it has finished: wait for it, or stop "
                f"it first (`kill {lease['pid']}`, or s on the app's run screen)")
    if report.shown_status(study, runner) == "pending":
        return (f"study {study.id} has not trained yet; the vault opens once it has finished "
                f"(`hp-tui resume {study.id}` trains it)")
    return None


def data_refusal(study: StudyRow, trial: TrialRow) -> str | None:
    """Why the trial's data is not what the study trained on (a CSV file that changed)."""
    changed = changed_file(study.data_files, trial.config.get("data", {}), study.base_dir)
    if changed is None:
        return None
    return (f"{changed}: its test rows would not be the ones held out. Restore the file the "
            f"study trained on (its size and sha256 are in `hp-tui show {study.id} --json`, "
            "data_fingerprints) to open the vault, or train a new study on the new data")


def check_can_open(store: Store, study: StudyRow, trial: TrialRow) -> None:
    """Raise VaultRefused when the vault cannot evaluate this trial now."""
    refusal = training_refusal(store, study)
    if refusal is None and trial.status == "pruned":
        refusal = (f"trial {trial.number} of study {study.id} was pruned by successive halving "
                   f"after {trial.epochs_done} of its "
                   f"{TrialConfig.from_dict(trial.config).epochs} epochs; only a configuration "
                   "trained to the end can be evaluated on the test split (pick a completed "
                   f"trial: hp-tui show {study.id})")
    if refusal is None and trial.status != "completed":
        refusal = (f"trial {trial.number} of study {study.id} is {trial.status}; only a "
                   "completed trial can be evaluated on the test split")
    refusal = refusal or data_refusal(study, trial)
    if refusal is not None:
        raise VaultRefused(refusal)


def earlier_evaluations(store: Store, study: StudyRow, trial: TrialRow) -> list[dict[str, Any]]:
    """The other studies' vault records on the same test split as this trial, oldest first."""
    key = test_split_key(trial.config.get("data", {}), study.data_files)
    out = []
    for record in store.vaults():
        if record["study_id"] == study.id:
            continue
        other = store.study(record["study_id"])
        if test_split_key(record["config"].get("data", {}), other.data_files) == key:
            out.append({"study": other.id, "name": other.name,
                        "trial_number": record["trial_number"], "test_acc": record["test_acc"],
                        "val_acc": record["val_acc"], "created": record["created"]})
    return out


def seen_before_message(earlier: list[dict[str, Any]]) -> str:
    """The warning for a test split that other studies evaluated already."""
    looks = "; ".join(
        f"study {e['study']}" + (f" ({e['name']})" if e.get("name") else "")
        + f", trial {e['trial_number']}, on {e['created']}: test accuracy {pct(e['test_acc'])}"
        for e in earlier)
    return (f"this test split was seen before ({looks}): the same data, data seed and test "
            "size. Another evaluation on it is no longer a first look; a model chosen after "
            "those results is not honestly tested by them")


def open_vault(store: Store, study_ref: str | int, trial_number: int) -> dict[str, Any]:
    """Evaluate the trial on the test split and record it. Raises VaultUsed if already opened,
    VaultRefused when it cannot open now (`check_can_open`)."""
    import torch

    from engine.train import evaluate
    from engine.train.data import test_split

    study = store.study(study_ref)
    existing = store.vault(study.id)
    if existing is not None:
        raise VaultUsed(_used_message(study.id, existing), existing)
    trial = store.trial(study.id, trial_number)
    check_can_open(store, study, trial)
    weights = store.weights(trial.id)
    if weights is None:
        raise VaultRefused(f"trial {trial_number} of study {study.id} has no stored weights")
    config = TrialConfig.from_dict(trial.config)
    split = test_split(config.data, study.base_dir)
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
