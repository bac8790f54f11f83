"""Study actions shared by the app's screens: plan and create a study, start, stop and resume
its runner. Torch-free: training happens in the detached runner process.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.datasets import check_datasets, study_fingerprints
from engine.presets import Preset
from engine.run import (
    Prestarted,
    RunnerOptions,
    logs_dir,
    memory,
    shuffle_for,
    start_detached,
    start_runner,
    stop_runner,
)
from engine.spec import FINISHED_TRIALS, SHUFFLE_NAMES, StudySpec, TrialConfig, TrialStatus
from engine.store import Store
from engine.study import eta, halving, samplers, strategies


@dataclass(frozen=True)
class Cost:
    """What a study would cost before it starts: the line the form and the presets list show."""

    strategy: str
    trials: int
    seconds: float
    others: dict[str, int]  # trials per other strategy for the same vary table (first round)
    varied: bool
    # seeds = "auto": the most trials (every configuration at max_seeds) and their ETA
    trials_max: int | None = None
    seconds_max: float | None = None
    # an identical study that ran here before: the trials it grew to and the time it took
    trials_likely: int | None = None
    seconds_likely: float | None = None
    # a batched (tpe) study: how many batches train one after another, and of how many
    batches: int | None = None
    batch: int | None = None
    # pruner = "halving": trial-epochs it will train, and without it
    trial_epochs: int | None = None
    trial_epochs_full: int | None = None

    def trials_text(self) -> str:
        """"12 trials", or "12-192 trials" for an adaptive study."""
        if self.trials_max is None or self.trials_max == self.trials:
            return f"{self.trials} trials"
        return f"{self.trials}-{self.trials_max} trials"

    def eta_text(self) -> str:
        text = f"~{eta.format_seconds(self.seconds)}"
        if self.seconds_max is None or self.trials_max == self.trials:
            return text
        text = f"{text} to ~{eta.format_seconds(self.seconds_max)}"
        if self.seconds_likely is not None and self.trials_likely is not None:
            text += f", {likely_text(self.trials_likely, self.seconds_likely)}"
        return text

    def line(self) -> str:
        others = ", ".join(f"{k} {v}" for k, v in self.others.items()
                           if k != self.strategy and self.varied)
        text = f"{self.strategy}: {self.trials_text()}, ETA {self.eta_text()}"
        if self.trials_max is not None:
            text += " (seeds auto)"
        if self.batches is not None:
            text += f" (in {self.batches} sequential batches of {self.batch})"
        if self.trial_epochs is not None and self.trial_epochs_full:
            text += (f"; halving: {self.trial_epochs:,} of {self.trial_epochs_full:,} "
                     f"trial-epochs ({self.trial_epochs / self.trial_epochs_full:.0%})")
        return text + (f"  (other strategies: {others})" if others else "")

    def to_dict(self) -> dict[str, Any]:
        out = {"strategy": self.strategy, "trials": self.trials, "seconds": self.seconds,
               "trials_max": self.trials_max, "seconds_max": self.seconds_max,
               "batches": self.batches, "batch": self.batch}
        if self.trial_epochs is not None:
            out.update(trial_epochs=self.trial_epochs, trial_epochs_full=self.trial_epochs_full)
        return out


def workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@dataclass(frozen=True)
class Placement:
    """Where the app's launches train: `hp-tui --executor ray [--ray-address ADDR]`."""

    executor: str = "local"
    ray_address: str | None = None

    def where(self) -> str:
        """'' for this machine, else 'on Ray HOST:PORT' or 'on a private Ray'."""
        from engine.run import executors

        return executors.where(self.executor, executors.ray_address(self.ray_address))


def past_runs(store: Store, *, on_ray: bool,
              preset: str | None = None) -> list[tuple[float, float]]:
    """(measured, modelled) seconds of recent runs, to calibrate the ETA to this machine; runs on
    Ray (recorded as 'ray:cpu', 'ray:cuda') calibrate only Ray studies, and local ones local.
    Runs of the same preset come first when there are some: the cost model errs by a different
    factor for each shape of study (measured here: 2.5x for the notebook, 0.6x for exercise 1),
    so a preset's own history predicts it best."""
    runs = [r for r in store.runs(limit=50) if r["model_seconds"]
            and r["device"].startswith("ray:") == on_ray]
    if preset is not None:
        names = {s.id: s.preset_name for s in store.studies()}
        runs = [r for r in runs if names.get(r["study_id"]) == preset] or runs
    return [(r["seconds"], r["model_seconds"]) for r in runs[:5]]


@dataclass(frozen=True)
class Calibration:
    """What the store says about this machine's speed, for the ETA: (measured, modelled)
    seconds of recent runs (`past_runs`), and the trials and training seconds of each finished
    study by what it ran (`study_key`)."""

    runs: list[tuple[float, float]] = dataclasses.field(default_factory=list)
    finished: dict[str, tuple[int, float]] = dataclasses.field(default_factory=dict)

    def same_study(self, preset: Preset) -> tuple[int, float] | None:
        """(trials, seconds with start-up) of an identical study that ran here: its trials and
        seeds depend only on the preset and the trained numbers, so it will grow the same way
        and take about as long."""
        found = self.finished.get(study_key(preset.config.to_dict(), preset.study.to_dict()))
        return None if found is None else (found[0], found[1] + eta.STARTUP_S)


def likely_text(trials: int, seconds: float) -> str:
    """How the form and `hp-tui run` say what an identical past study predicts."""
    return f"likely ~{eta.format_seconds(seconds)} ({trials} trials, as the same study here before)"


def study_key(baseline: dict[str, Any], spec: dict[str, Any]) -> str:
    """What a study runs, as one comparable string (a stored study's baseline and spec, or a
    preset's). Its shuffle recipe is left out: chosen by where a study trains (a preset does not
    say it), it changes the numbers, not how many trials a study takes or how long."""
    spec = {k: v for k, v in spec.items() if k != "shuffle"}
    return json.dumps([baseline, spec], sort_keys=True)


def calibration(store: Store, *, on_ray: bool, preset: str | None = None) -> Calibration:
    """`past_runs`, and each finished study of those runs (on this placement) with its trial
    count and the training seconds of all the runs that trained it (a resume adds a run)."""
    seconds: dict[int, float] = {}
    for r in store.runs(limit=200):
        if r["device"].startswith("ray:") == on_ray:
            seconds[r["study_id"]] = seconds.get(r["study_id"], 0.0) + r["seconds"]
    finished: dict[str, tuple[int, float]] = {}
    for s in store.studies():  # oldest first: the newest identical study is the one kept
        if s.id in seconds and s.status == "completed":
            finished[study_key(s.baseline, s.spec)] = (sum(s.counts.values()), seconds[s.id])
    return Calibration(past_runs(store, on_ray=on_ray, preset=preset), finished)


def time_left(store: Store, study: Any, trials: Iterable[Any]) -> tuple[float | None,
                                                                      float | None]:
    """When watching a study begins: (seconds its unfinished trials should take here, the
    CLI's estimate for them; seconds an identical study took here, start-up included)."""
    known = calibration(store, on_ray=study.executor == "ray", preset=study.preset_name)
    found = known.finished.get(study_key(study.baseline, study.spec))
    same = None if found is None or study.status == "completed" else found[1] + eta.STARTUP_S
    trials = list(trials)
    todo = [TrialConfig.from_dict(t.config) for t in trials if t.status not in FINISHED_TRIALS]
    if not todo:
        return None, same
    started = any(t.epochs_done for t in trials)
    if same is not None and not started and not grows(study.spec):
        return same, same
    seconds = eta.estimate(todo, known.runs or None, workers=workers()).seconds
    return (seconds - eta.STARTUP_S if started else seconds), same


def grows(spec: dict[str, Any]) -> bool:
    """Whether a stored study adds trials as it goes (seeds = "auto", or batch after batch):
    what it will train is not all planned yet."""
    study = StudySpec.from_dict(spec)
    return study.adaptive or study.batched


def cost(preset: Preset, runs: list[tuple[float, float]] | Calibration | None = None) -> Cost:
    """The study's size and ETA; `runs` (`past_runs`, or a `Calibration` with them) calibrate
    the ETA to this machine, and an identical past study says how long it will likely take."""
    known = runs if isinstance(runs, Calibration) else Calibration(list(runs or []))
    runs = known.runs
    plan = strategies.plan(preset.config, preset.study)
    study = preset.study
    same = known.same_study(preset)
    if study.batched:  # the plan is the first batch; the rest come one after another
        seconds = eta.estimate_batches([t.config for t in plan.trials], study.batches,
                                       runs or None, workers=workers()).seconds
        seconds = same[1] if same is not None else seconds
        return Cost(plan.strategy, strategies.count(preset.config, study), seconds,
                    strategies.counts_by_strategy(preset.config, study), bool(study.vary),
                    batches=study.batches, batch=min(study.batch, study.samples))
    configs_spent, halved = halving.planned([t.config for t in plan.trials], preset.study)
    seconds = eta.estimate(configs_spent, runs or None, workers=workers()).seconds
    most, most_seconds = None, None
    if preset.study.adaptive:
        _, most = strategies.count_range(preset.config, preset.study)
        per_config = most // max(1, plan.n_configs)
        configs = [t.config for t in plan.trials if t.replicate == 0]
        most_seconds = eta.estimate([c for c in configs for _ in range(per_config)],
                                    runs or None, workers=workers()).seconds
    elif same is not None:
        seconds = same[1]
    return Cost(plan.strategy, plan.n_trials, seconds,
                strategies.counts_by_strategy(preset.config, preset.study),
                bool(preset.study.vary), most, most_seconds,
                trials_likely=same[0] if same is not None and study.adaptive else None,
                seconds_likely=same[1] if same is not None and study.adaptive else None,
                trial_epochs=halved.with_halving if halved else None,
                trial_epochs_full=halved.without if halved else None)


RACE_SEEDS = 3  # study seeds of a race started from the app (`hp-tui race --seeds`)


@dataclass(frozen=True)
class RacePlan:
    """What `hp-tui race PRESET` with its defaults would train: per strategy one line, and the
    strategies it cannot run here with why."""

    budget: int
    seeds: list[int]
    lines: dict[str, str]
    skipped: dict[str, str]


def race_plan(preset: Preset) -> RacePlan:
    """The race's entrants as the CLI plans them (raises engine.study.race.RaceError)."""
    from engine.study import race

    budget = race.default_budget(preset.config, preset.study)
    race.check(preset.config, preset.study, budget)
    seeds = [preset.study.seed + i for i in range(RACE_SEEDS)]
    first, skipped = race.entrants(list(race.STRATEGIES), preset.config, preset.study, budget,
                                   seeds[:1])
    return RacePlan(budget, seeds, {n: race.plan_line(e[0]) for n, e in first.items()},
                    skipped)


def start_race(store: Store, preset_path: Path) -> Any:
    """`hp-tui race PRESET` as a process of its own (its own session: it outlives the app and
    a dropped connection); its output goes to a log beside the store's study logs."""
    import sys

    return start_detached([sys.executable, "-m", "tui.cli", "--store", str(store.path), "race",
                           str(preset_path), "--json"],
                          logs_dir(store.path) / f"race-{preset_path.stem}.log")


def shuffle_named(name: str | None) -> int | None:
    """The recipe `--shuffle NAME` names; None (no option): the one for the study's device."""
    return None if name is None else SHUFFLE_NAMES[name]


def create_study(store: Store, preset: Preset, *, name: str | None = None,
                 device: str = "auto", plan: strategies.Plan | None = None,
                 executor: str = "local", ray_address: str | None = None,
                 warn: Callable[[str], None] | None = None, shuffle: int | None = None) -> int:
    """The same steps as `hp-tui run`: plan the trials and write the study; returns its id.
    `shuffle`: the trials' shuffle recipe (default: `shuffle_for` the device).
    A Ray study records its cluster (engine.run.executors.ray_address) so that resuming it, from
    here or from the app, goes back to the same one.

    CSV data is read first (engine.datasets raises DataError for a broken file), so that a study
    whose every trial would fail is never stored; `warn` gets what is odd but trainable. Their
    fingerprints are stored with the study: the vault refuses a file that changed since."""
    samplers.require(preset.study.strategy)  # before anything is written: SamplerMissing
    plan = plan or strategies.plan(preset.config, preset.study)
    base_dir = preset.base_dir
    for warning in check_datasets((t.config.data for t in plan.trials), base_dir):
        if warn is not None:
            warn(warning)
    if executor == "ray":
        from engine.run import ray_address as resolved

        ray_address = resolved(ray_address)
    return store.create_study(
        name=name, preset_name=preset.name,
        preset_path=str(preset.path.resolve()) if preset.path else None,
        preset_text=preset.text, strategy=plan.strategy, seed=preset.study.seed,
        baseline=preset.config.to_dict(),
        spec=dataclasses.replace(preset.study, shuffle=shuffle or shuffle_for(device)).to_dict(),
        device=device,
        trials=[(t.config.to_dict(), t.seed, t.replicate) for t in plan.trials],
        executor=executor, ray_address=ray_address,
        data_files=study_fingerprints(
            (dataclasses.asdict(d) for d in {t.config.data for t in plan.trials}), base_dir))


def memory_refusal(configs: Iterable[TrialConfig], *, workers: int, device: str | None,
                   executor: str = "local", base_dir: Path | None = None) -> str | None:
    """Why training `configs` here would not fit this machine's memory (engine.run.memory), or
    None. A Ray study trains on the cluster's nodes, whose memory is Ray's to watch."""
    if executor == "ray":
        return None
    return memory.refusal(configs, workers, device=device, base_dir=base_dir)


def launch_memory_refusal(preset: Preset, plan: strategies.Plan, executor: str) -> str | None:
    """`memory_refusal` for a new study launched from the app (one worker per core)."""
    return memory_refusal((t.config for t in plan.trials), workers=workers(), device="auto",
                          executor=executor,
                          base_dir=preset.base_dir)


def resume_memory_refusal(store: Store, study_id: int) -> str | None:
    """`memory_refusal` for resuming the study from the app: its unfinished trials."""
    study = store.study(study_id)
    todo = [TrialConfig.from_dict(t.config) for t in store.trials(study_id)
            if not TrialStatus(t.status).is_kept_on_resume()]
    return memory_refusal(todo, workers=workers(), device=study.device,
                          executor=study.executor, base_dir=study.base_dir)


def launch(store: Store, study_id: int, device: str | None = None) -> int:
    """Start the study's runner detached; returns its pid. It outlives the app."""
    return start_runner(store.path, study_id, RunnerOptions(device=device)).pid


class WarmRunner:
    """One runner started ahead while the app's form is open, its imports (torch: ~1 s) done,
    waiting for a study (engine.run.launcher.Prestarted): the next launch hands it the study, so the
    first epoch comes that much sooner. One never used costs only its memory; `close` ends it,
    and it ends by itself when the app's process dies (its pipe closes)."""

    def __init__(self, store_path: Path) -> None:
        self.store_path = store_path
        self._runner: Prestarted | None = None

    def warm(self) -> None:
        if self._runner is None:
            self._runner = Prestarted(self.store_path)

    def launch(self, store: Store, study_id: int) -> int:
        """The study's runner: the warm one when there is one, else a new one; its pid."""
        runner, self._runner = self._runner, None
        if runner is None:
            return launch(store, study_id)
        return runner.launch(store.path, study_id).pid

    def close(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            runner.cancel()


def runner_pid(store: Store, study_id: int) -> int | None:
    lease = store.lease(study_id)
    return int(lease["pid"]) if lease and lease.get("alive") else None


def stop(store: Store, study_id: int) -> bool:
    """SIGTERM the runner holding the study's lease; the study stays resumable."""
    pid = runner_pid(store, study_id)
    return True if pid is None else stop_runner(pid)
