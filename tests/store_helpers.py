"""Small studies written straight into a store, for the store's own tests."""

from __future__ import annotations

from typing import Any

from engine.store import Store

HOST = "test-host"


def make_study(store: Store, n: int = 4, name: str | None = None, **over: Any) -> int:
    trials = [({"train": {"lr": 0.1 * (i + 1)}}, 100 + i, i % 2) for i in range(n)]
    args: dict[str, Any] = dict(
        name=name, preset_name="notebook", preset_path="/presets/notebook.toml",
        preset_text="[train]\nlr = 0.1\n", strategy="grid", seed=7,
        baseline={"train": {"lr": 0.1}}, spec={"strategy": "grid", "vary": {"lr": [0.1, 0.2]}},
        device="cpu", trials=trials)
    args.update(over)
    return store.create_study(**args)


def ids(store: Store, study: int) -> list[int]:
    return [t.id for t in store.trials(study)]
