"""Study actions shared by the app's screens: plan and create a study, start, stop and resume
its runner. Torch-free: training happens in the detached runner process (DESIGN.md section 2).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from engine import eta, strategies
from engine.config import TrialConfig
from engine.launcher import RunnerOptions, start_runner, stop_runner
from engine.presets import Preset
from engine.store import Store


@dataclass(frozen=True)
class Cost:
    """What a study would cost before it starts: the line the form and the presets list show."""

    strategy: str
    trials: int
    seconds: float
    others: dict[str, int]  # trials per other strategy for the same vary table
    varied: bool

    def line(self) -> str:
        others = ", ".join(f"{k} {v}" for k, v in self.others.items()
                           if k != self.strategy and self.varied)
        text = f"{self.strategy}: {self.trials} trials, ETA ~{eta.format_seconds(self.seconds)}"
        return text + (f"  (other strategies: {others})" if others else "")


def workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@dataclass(frozen=True)
class Placement:
    """Where the app's launches train: `hp-tui --executor ray [--ray-address ADDR]`."""

    executor: str = "local"
    ray_address: str | None = None

    def where(self) -> str:
        """'' for this machine, else 'on Ray HOST:PORT' or 'on a private Ray'."""
        from engine import executors

        return executors.where(self.executor, executors.ray_address(self.ray_address))


def cost(preset: Preset) -> Cost:
    plan = strategies.plan(preset.config, preset.study)
    seconds = eta.estimate([t.config for t in plan.trials], None, workers=workers()).seconds
    return Cost(plan.strategy, plan.n_trials, seconds,
                strategies.counts_by_strategy(preset.config, preset.study),
                bool(preset.study.vary))


def create_study(store: Store, preset: Preset, *, name: str | None = None,
                 device: str = "auto", plan: strategies.Plan | None = None,
                 executor: str = "local", ray_address: str | None = None) -> int:
    """The same steps as `hp-tui run`: plan the trials and write the study; returns its id.
    A Ray study records its cluster (engine.executors.ray_address) so that resuming it, from
    here or from the app, goes back to the same one."""
    plan = plan or strategies.plan(preset.config, preset.study)
    if executor == "ray":
        from engine.executors import ray_address as resolved

        ray_address = resolved(ray_address)
    return store.create_study(
        name=name, preset_name=preset.name,
        preset_path=str(preset.path.resolve()) if preset.path else None,
        preset_text=preset.text, strategy=plan.strategy, seed=preset.study.seed,
        baseline=preset.config.to_dict(), spec=preset.study.to_dict(), device=device,
        trials=[(t.config.to_dict(), t.seed, t.replicate) for t in plan.trials],
        executor=executor, ray_address=ray_address)


def launch(store: Store, study_id: int, device: str | None = None) -> int:
    """Start the study's runner detached; returns its pid. It outlives the app."""
    return start_runner(store.path, study_id, RunnerOptions(device=device)).pid


def runner_pid(store: Store, study_id: int) -> int | None:
    lease = store.lease(study_id)
    return int(lease["pid"]) if lease and lease.get("alive") else None


def stop(store: Store, study_id: int) -> bool:
    """SIGTERM the runner holding the study's lease; the study stays resumable."""
    pid = runner_pid(store, study_id)
    return True if pid is None else stop_runner(pid)


def total_epochs(configs: list[dict]) -> int:
    return sum(TrialConfig.from_dict(c).epochs for c in configs)
