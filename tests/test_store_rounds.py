"""The rounds of adaptive studies in the store: add_round appends trials in one fenced
transaction, rounds reads them back, and stores of schema v3 gain the table."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from engine.store import SCHEMA_VERSION, LeaseLost, Store, StoreError
from engine.store import schema as store_schema
from tests.store_helpers import HOST, make_study


def new_trials(n: int, first_replicate: int = 2) -> list[tuple[dict, int, int]]:
    return [({"train": {"lr": 0.1}}, 900 + i, first_replicate + i) for i in range(n)]


def test_add_round_appends_numbered_trials(store: Store) -> None:
    sid = make_study(store, n=4)
    assert store.rounds(sid) == []
    first = store.add_round(sid, number=1, seeds=2, configs=[0, 1], reason="round 1: start")
    assert first == []
    added = store.add_round(sid, number=2, seeds=4, configs=[0], trials=new_trials(2),
                            reason="round 2: 1 configuration still undecided (lr)")
    assert [t.number for t in added] == [5, 6]
    assert [(t.seed, t.replicate, t.status) for t in added] == [(900, 2, "pending"),
                                                                (901, 3, "pending")]
    assert [t.number for t in store.trials(sid)] == [1, 2, 3, 4, 5, 6]
    assert store.study(sid).counts["pending"] == 6
    r1, r2 = store.rounds(sid)
    assert (r1.number, r1.seeds, r1.configs, r1.trials) == (1, 2, [0, 1], 0)
    assert (r2.number, r2.seeds, r2.configs, r2.trials) == (2, 4, [0], 2)
    assert r2.reason == "round 2: 1 configuration still undecided (lr)"
    assert r2.to_dict()["round"] == 2 and r2.created


def test_a_round_is_recorded_once(store: Store) -> None:
    sid = make_study(store, n=2)
    store.add_round(sid, number=2, seeds=4, configs=[0], trials=new_trials(1), reason="r")
    with pytest.raises(StoreError, match="already has a round 2"):
        store.add_round(sid, number=2, seeds=4, configs=[0], trials=new_trials(1), reason="r")
    assert len(store.trials(sid)) == 3 and len(store.rounds(sid)) == 1


def test_rounds_are_per_study(store: Store) -> None:
    a, b = make_study(store, n=2), make_study(store, n=3)
    store.add_round(b, number=2, seeds=4, configs=[1], trials=new_trials(2), reason="r")
    assert store.rounds(a) == [] and [t.number for t in store.trials(b)] == [1, 2, 3, 4, 5]
    assert [t.number for t in store.trials(a)] == [1, 2]


def test_add_round_is_fenced_by_the_lease(store: Store) -> None:
    sid = make_study(store, n=2)
    token = store.acquire_lease(sid, pid=os.getpid(), host=HOST)
    store.hold(sid, token)
    store.add_round(sid, number=1, seeds=2, configs=[0], reason="round 1")
    store.release_lease(sid, token)  # as if another runner had taken it over
    with pytest.raises(LeaseLost, match="taken over"):
        store.add_round(sid, number=2, seeds=4, configs=[0], trials=new_trials(2), reason="r")
    assert len(store.trials(sid)) == 2 and len(store.rounds(sid)) == 1


def test_a_v3_store_gains_rounds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "store.db"
    with monkeypatch.context() as m:  # a store written before adaptive seeding
        m.setattr(store_schema, "MIGRATIONS", store_schema.MIGRATIONS[:3])
        m.setattr(store_schema, "SCHEMA_VERSION", 3)
        with Store(path) as old:
            sid = make_study(old, n=2, spec={"strategy": "grid", "seeds": 1,
                                             "vary": {"lr": [0.1, 0.2]}})
            tables = {r[0] for r in old._db.execute("SELECT name FROM sqlite_master")}
            assert "rounds" not in tables
    with Store(path) as s:
        assert s._db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION >= 4
        assert s.rounds(sid) == [] and [t.number for t in s.trials(sid)] == [1, 2]
        s.add_round(sid, number=2, seeds=2, configs=[0, 1], trials=new_trials(2, 1), reason="r")
        assert [t.number for t in s.trials(sid)] == [1, 2, 3, 4]
    with Store(path, readonly=True) as viewer:
        assert [r.number for r in viewer.rounds(sid)] == [2]
