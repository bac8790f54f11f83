"""A study as plain data: what `show --json`, exports, the CLI tables and the app all read.

Built from the store alone (no torch), so any viewer can produce it while a runner writes.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from engine.spec import SHUFFLE_DRAWN, StudySpec, TrialConfig, TrialStatus
from engine.store import Store, StudyRow, TrialRow
from engine.study import analysis, halving


def flat_config(trial: TrialRow) -> dict[str, Any]:
    return TrialConfig.from_dict(trial.config).flat()


def trial_results(trials: list[TrialRow]) -> list[analysis.TrialResult]:
    """The finished trials the analysis reads: those of configurations trained to the end (a
    configuration pruned by halving counts nowhere, not even through a seed that diverged)."""
    pruned = {json.dumps(t.config, sort_keys=True) for t in trials
              if t.status == TrialStatus.PRUNED}
    return [analysis.TrialResult(number=t.number, config=flat_config(t), replicate=t.replicate,
                                 status=t.status, val_acc=t.val_acc)
            for t in trials if TrialStatus(t.status).is_finished()
            and t.status != TrialStatus.PRUNED
            and json.dumps(t.config, sort_keys=True) not in pruned]


def halving_facts(spec: StudySpec, trials: list[TrialRow]) -> dict[str, Any]:
    """The pruner's part of a study's JSON: its rungs, the trials and configurations it
    pruned, and the trial-epochs trained against the same study without pruning (the saving
    counts the epochs each pruned trial did not train)."""
    epochs = max((TrialConfig.from_dict(t.config).epochs for t in trials), default=0)
    full = sum(TrialConfig.from_dict(t.config).epochs for t in trials)
    pruned = [t for t in trials if t.status == TrialStatus.PRUNED]
    saved = sum(TrialConfig.from_dict(t.config).epochs - t.epochs_done for t in pruned)
    return {"pruner": spec.pruner, "reduction": spec.reduction if spec.halving else None,
            "rungs": list(halving.study_rungs(spec, epochs)), "pruned": len(pruned),
            "pruned_configs": len({json.dumps(t.config, sort_keys=True) for t in pruned}),
            "trial_epochs": sum(t.epochs_done for t in trials), "trial_epochs_full": full,
            "trial_epochs_saved": saved}


def impact(study: StudyRow, results: list[analysis.TrialResult],
           trials: list[TrialRow] | None = None) -> analysis.Impact | None:
    """The impact table, or None for a study that varies nothing (a single run). With the
    study's `trials`, rows are decided only at the rounds it completed (an unfinished round
    is no look: deciding on part of one would peek)."""
    vary = study.spec.get("vary") or {}
    if study.strategy == "single" or not vary:
        return None
    baseline = TrialConfig.from_dict(study.baseline).flat()
    return analysis.impact(study.strategy, baseline, vary, results,
                           looks=looks(study, trials) if trials is not None else None)


def looks(study: StudyRow, trials: list[TrialRow]) -> analysis.Looks:
    """The rounds the study completed: every trial of replicates below the round's seeds has
    finished, and the round reached that many seeds."""
    spec = StudySpec.from_dict(study.spec)
    planned = spec.schedule
    done = []
    for n in planned:
        reached = any(t.replicate == n - 1 for t in trials)
        if not reached or any(t.replicate < n and not TrialStatus(t.status).is_finished()
                              for t in trials):
            break
        done.append(n)
    return analysis.Looks(done=tuple(done), planned=len(planned), negligible=spec.negligible)


def changes(config: dict[str, Any], baseline: dict[str, Any]) -> dict[str, Any]:
    """What a flat config changes from the preset's ({} for the baseline itself)."""
    return {k: v for k, v in config.items() if baseline.get(k) != v}


def varying_keys(configs: list[dict[str, Any]]) -> list[str]:
    """Keys whose value differs between these flat configs: the columns worth showing."""
    if not configs:
        return []
    return [k for k in configs[0] if len({json.dumps(c.get(k)) for c in configs}) > 1]


def runner_state(study: StudyRow, lease: dict[str, Any] | None) -> str | None:
    """"alive" while a live runner holds the study; "gone" when its runner died (a stale lease,
    or a study still marked running that no runner holds); None when no runner is involved."""
    if lease is not None:
        return "alive" if lease.get("alive") else "gone"
    return "gone" if study.status == "running" else None


def shown_status(study: StudyRow, runner: str | None) -> str:
    """The status to show: the stored one, except that a study marked running whose runner is
    gone (killed, so it never wrote its end) is interrupted, which `resume` finishes."""
    return "interrupted" if study.status == "running" and runner == "gone" else study.status


def study_status(store: Store, study: StudyRow) -> tuple[str, str | None]:
    """(status to show, runner state) of a study as judged now: what every view reports."""
    runner = runner_state(study, store.lease(study.id))
    return shown_status(study, runner), runner


@dataclass(frozen=True)
class TrialReport:
    """One trial as every view shows it; `to_dict` is its `--json` shape."""

    number: int  # 1..N within the study (the JSON's "id", for scripts written before "number")
    config: dict[str, Any]  # flat: bare key -> value
    changed: dict[str, Any]  # what it changes from the preset ({} for the baseline)
    seed: int
    replicate: int
    status: str
    val_acc: float | None
    val_loss: float | None
    train_loss: float | None
    epochs: int
    diverged_epoch: int | None
    error: str | None
    trained_on: str | None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        return {"id": out.pop("number"), **out, "number": self.number}


@dataclass(frozen=True)
class StudyReport:
    """A study as every view shows it, read from the store in one pass; `to_dict` is the JSON
    shape of `run`, `resume` and `show`."""

    study: int
    name: str | None
    preset: str | None
    strategy: str
    status: str
    runner: str | None
    created: str
    device: str | None
    executor: str
    ray_address: str | None
    counts: dict[str, int]
    trials: list[TrialReport]
    impact: analysis.Impact | None
    data_fingerprints: list[dict[str, Any]]
    error: str | None = None
    interaction: analysis.Interaction | None = None
    predictions: list[analysis.PredictionScore] | None = None  # scored when the user predicted
    vault: dict[str, Any] | None = None
    # an adaptive study's rounds (RoundRow.to_dict: round, seeds, configs, trials, reason)
    rounds: list[dict[str, Any]] = field(default_factory=list)
    # the pruner (halving_facts): "pruner", "rungs", "pruned", "trial_epochs", ...
    halving: dict[str, Any] = field(default_factory=dict)
    shuffle: int = SHUFFLE_DRAWN  # its trials' shuffle recipe (engine.spec.seeds)

    def to_dict(self) -> dict[str, Any]:
        table = self.impact
        out: dict[str, Any] = {
            "study": self.study,
            "name": self.name,
            "preset": self.preset,
            "strategy": self.strategy,
            "status": self.status,
            "runner": self.runner,
            "created": self.created,
            "device": self.device,
            "executor": self.executor,
            "ray_address": self.ray_address,
            "counts": self.counts,
            "trials": [t.to_dict() for t in self.trials],
            "impact": [_jsonable(r.to_dict()) for r in table.rows] if table else [],
            "reading": table.reading if table else None,
            "baseline_acc": list(table.baseline_acc) if table and table.baseline_acc else None,
            "data_fingerprints": self.data_fingerprints,
            # what the decisions mean: the smallest effect worth caring about, and the chance
            # of any false "matters" in the study
            "negligible": table.negligible if table else None,
            "error_rate": analysis.ALPHA,
            "rounds": self.rounds,
            **self.halving,
            "shuffle": self.shuffle,
        }
        if self.error:
            out["error"] = self.error
        if self.interaction is not None:
            out["interaction"] = _jsonable(asdict(self.interaction))
        if self.predictions is not None:
            out["predictions"] = [_jsonable(asdict(s)) for s in self.predictions]
        if self.vault:
            out["vault"] = self.vault
        return out


def study_report(store: Store, study: StudyRow) -> StudyReport:
    """The study as it stands in the store now."""
    trials = store.trials(study.id)
    results = trial_results(trials)
    table = impact(study, results, trials)
    baseline = TrialConfig.from_dict(study.baseline).flat()
    status, runner = study_status(store, study)
    interaction = (analysis.interaction(study.spec.get("vary") or {}, results)
                   if study.strategy == "grid" else None)
    predictions = store.predictions(study.id)
    spec = StudySpec.from_dict(study.spec)
    return StudyReport(
        study=study.id, name=study.name, preset=study.preset_name, strategy=study.strategy,
        status=status, runner=runner, created=study.created, device=study.device,
        executor=study.executor, ray_address=study.ray_address, counts=study.counts,
        trials=[trial_report(t, baseline) for t in trials], impact=table,
        data_fingerprints=study.data_files or [], error=study.error, interaction=interaction,
        predictions=(analysis.score_predictions(predictions, table)
                     if predictions and table else None),
        vault=store.vault(study.id), rounds=[r.to_dict() for r in store.rounds(study.id)],
        halving=halving_facts(spec, trials), shuffle=spec.shuffle)


def study_dict(store: Store, study: StudyRow) -> dict[str, Any]:
    """The JSON shape of `run`, `resume` and `show`."""
    return study_report(store, study).to_dict()


def trial_report(t: TrialRow, baseline: dict[str, Any]) -> TrialReport:
    config = flat_config(t)
    return TrialReport(
        number=t.number, config=config, changed=changes(config, baseline), seed=t.seed,
        replicate=t.replicate, status=t.status, val_acc=_num(t.val_acc),
        val_loss=_num(t.val_loss), train_loss=_num(t.train_loss), epochs=t.epochs_done,
        diverged_epoch=t.diverged_epoch, error=t.error, trained_on=t.device)


def trial_dict(t: TrialRow, baseline: dict[str, Any]) -> dict[str, Any]:
    return trial_report(t, baseline).to_dict()


def _num(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def _jsonable(value: Any) -> Any:
    """Tuples to lists and non-finite floats to None, so json.dumps gives strict JSON."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float):
        return _num(value)
    return value
