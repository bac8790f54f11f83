"""Shuffle recipes: the keyed bijection (recipe 2) is a permutation, the same on every device,
statistically a shuffle; the trainer and the reference use each study's recipe; new studies
record the recipe chosen for where they train, and old ones resume with recipe 1."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from scipy import stats

import engine.train.shuffles as shuffles
from engine.run import gpu_visible, shuffle_for
from engine.spec import SHUFFLE_DRAWN, SHUFFLE_KEYED, DataConfig, StudySpec, TrialConfig
from engine.train import Trial, load_splits, train_population, train_reference
from engine.train.shuffles import FEISTEL_ROUNDS, keyed_permutations, round_keys

CPU = torch.device("cpu")
SIZES = [1, 2, 3, 5, 7, 8, 9, 31, 100, 1000, 4000, 4096, 4097]


# --- the recipe: a pure integer function ------------------------------------------------------


def python_permutation(seed: int, epoch: int, n: int) -> list[int]:
    """Recipe 2 written again with Python integers, one index at a time, from its docstring:
    nothing here is a tensor, so agreeing with it means the recipe is integer arithmetic only,
    and any device that computes integers exactly computes the same permutation."""
    if n == 1:
        return [0]
    keys = [int(k) for k in round_keys([seed], epoch)[0]]
    k = max(2, (n - 1).bit_length())
    bits = (k // 2, k - k // 2)
    mults = shuffles._MULTIPLIERS

    def encrypt(x: int) -> int:
        wl, wr = bits
        left, right = x >> wr, x & ((1 << wr) - 1)
        for r in range(FEISTEL_ROUNDS):
            h = (right ^ keys[r]) * mults[r]
            h = ((h ^ (h >> 15)) & 0xFFFF) * mults[(r + 4) % len(mults)]
            left, right = right, left ^ ((h >> 15) & ((1 << wl) - 1))
            wl, wr = wr, wl
        return (left << wr) | right

    out = []
    for j in range(n):
        x = encrypt(j)
        while x >= n:
            x = encrypt(x)
        out.append(x)
    return out


@pytest.mark.parametrize("n", SIZES)
def test_each_row_is_a_permutation(n):
    perms = keyed_permutations(list(range(40)), 3, n, CPU)
    assert perms.dtype == torch.long and perms.shape == (40, n)
    assert torch.equal(perms.sort(dim=1).values, torch.arange(n).expand(40, n))


@pytest.mark.parametrize("n", [2, 7, 100, 1000, 4097])
def test_integer_arithmetic_only_as_python_computes_it(n):
    seeds = [0, 1, 12345, 2**62 + 977, 2**63 - 1]
    perms = keyed_permutations(seeds, 5, n, CPU)
    for row, seed in zip(perms.tolist(), seeds, strict=True):
        assert row == python_permutation(seed, 5, n)


def test_blocks_do_not_change_the_numbers(monkeypatch):
    """A GPU computes in larger blocks of rows than a CPU: the result is the same."""
    seeds = list(range(300))
    whole = keyed_permutations(seeds, 2, 1000, CPU)
    monkeypatch.setitem(shuffles._BLOCK_ELEMENTS, "cpu", 3000)  # three rows a block
    assert torch.equal(keyed_permutations(seeds, 2, 1000, CPU), whole)


def test_the_recipe_is_pinned():
    """A stored study resumes with these exact shuffles: changing the recipe needs a new one."""
    assert keyed_permutations([0, 7, 2**62 + 5], 4, 10, CPU).tolist() == PINNED


PINNED = [[6, 1, 5, 3, 9, 2, 7, 4, 8, 0],
          [3, 0, 7, 5, 2, 4, 8, 9, 6, 1],
          [5, 7, 1, 9, 0, 4, 2, 3, 6, 8]]


def test_rows_depend_on_the_seed_and_epoch_only():
    a = keyed_permutations([11, 12, 13], 0, 500, CPU)
    assert torch.equal(keyed_permutations([13], 0, 500, CPU)[0], a[2])  # not on its neighbours
    assert not torch.equal(a[0], a[1])
    assert not torch.equal(keyed_permutations([11], 1, 500, CPU)[0], a[0])


def test_out_is_filled_in_place():
    out = torch.full((4, 50), -1, dtype=torch.long)
    assert keyed_permutations([1, 2, 3, 4], 0, 50, CPU, out=out) is out
    assert (out >= 0).all()


def test_too_many_rows_are_refused():
    with pytest.raises(ValueError, match="at most"):
        keyed_permutations([0], 0, 2**31, CPU)


# --- statistically a shuffle (chi-square tests at 1e-4: a good recipe fails one in 10^4) ------


N_SMALL, DRAWS = 64, 20000


@pytest.fixture(scope="module")
def many():
    return keyed_permutations(list(range(DRAWS)), 0, N_SMALL, CPU)


def test_every_value_lands_anywhere_alike(many):
    where = many.argsort(dim=1)  # where[s, v]: the position of value v in draw s
    counts = torch.stack([torch.bincount(where[:, v], minlength=N_SMALL)
                          for v in range(N_SMALL)]).double()
    assert stats.chisquare(counts.flatten()).pvalue > 1e-4


def test_neighbours_are_any_pair_alike(many):
    """Batches are consecutive positions: no pair of rows may sit together more than chance.
    (A 4-round network with a multiplicative round function failed this at 125x the
    chi-square's expectation.)"""
    pairs = torch.zeros(N_SMALL, N_SMALL)
    pairs.index_put_((many[:, :-1].flatten(), many[:, 1:].flatten()),
                     torch.ones(DRAWS * (N_SMALL - 1)), accumulate=True)
    off = ~torch.eye(N_SMALL, dtype=torch.bool)
    assert stats.chisquare(pairs[off].double()).pvalue > 1e-4


def test_epochs_are_unrelated(many):
    """Spearman's rho between a trial's orders at two epochs: mean 0, sd 1/sqrt(n - 1)."""
    later = keyed_permutations(list(range(DRAWS)), 1, N_SMALL, CPU)
    a, b = many.argsort(dim=1).double(), later.argsort(dim=1).double()
    a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
    rho = (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1))
    sd = 1 / (N_SMALL - 1) ** 0.5
    assert abs(float(rho.mean())) < 5 * sd / DRAWS**0.5
    assert float(rho.std()) == pytest.approx(sd, rel=0.05)


# --- the trainer and the reference follow the trial's recipe ------------------------------------


DATA = DataConfig(train_size=200, val_size=100)


@pytest.fixture(scope="module")
def splits():
    return load_splits(DATA)


def trial(seed: int, shuffle: int, **kw) -> Trial:
    kw.setdefault("epochs", 2)
    return Trial(TrialConfig(data=DATA, **kw), seed, shuffle)


def test_reference_shuffles_by_the_recipe(splits):
    keyed = train_reference(trial(3, SHUFFLE_KEYED), splits)
    drawn = train_reference(trial(3, SHUFFLE_DRAWN), splits)
    # the same initial weights (the generator draws them first either way), other batches
    assert keyed.history[0].train_loss != drawn.history[0].train_loss
    assert keyed.status == drawn.status == "completed"


@pytest.mark.numerics
def test_population_of_both_recipes_equals_the_reference(splits):
    """A population mixing recipes (and epoch counts, so some rows idle): each trial as the
    reference trains it alone."""
    trials = [trial(s, SHUFFLE_KEYED if s % 3 else SHUFFLE_DRAWN, lr=0.05 + 0.01 * s,
                    epochs=2 + s % 2) for s in range(9)]
    outcomes = train_population(trials, splits, compile=False)
    for t, out in zip(trials, outcomes, strict=True):
        ref = train_reference(t, splits)
        for (wa, ba), (wb, bb) in zip(out.weights, ref.weights, strict=True):
            torch.testing.assert_close(wa, wb, atol=2e-5, rtol=1e-4)
            torch.testing.assert_close(ba, bb, atol=2e-5, rtol=1e-4)


@pytest.mark.numerics
def test_keyed_trials_that_end_early_leave_the_others_their_shuffles(splits):
    """Every trial keyed, the first ones ending first: from then on the keyed rows are no
    longer the population's first rows (the other path into the shuffles)."""
    trials = [trial(s, SHUFFLE_KEYED, lr=0.05, epochs=1 + s) for s in range(4)]
    outcomes = train_population(trials, splits, compile=False)
    for t, out in zip(trials, outcomes, strict=True):
        ref = train_reference(t, splits)
        assert len(out.history) == t.config.epochs
        for (wa, ba), (wb, bb) in zip(out.weights, ref.weights, strict=True):
            torch.testing.assert_close(wa, wb, atol=2e-5, rtol=1e-4)
            torch.testing.assert_close(ba, bb, atol=2e-5, rtol=1e-4)


def test_unknown_recipe_is_refused():
    with pytest.raises(ValueError, match="shuffle recipe 3"):
        trial(0, 3)


# --- which recipe a study records ---------------------------------------------------------------


@pytest.mark.parametrize(("device", "gpu", "recipe"), [
    ("cpu", True, SHUFFLE_DRAWN),
    ("auto", False, SHUFFLE_DRAWN),
    ("auto", True, SHUFFLE_KEYED),
    (None, True, SHUFFLE_KEYED),
    ("cuda", False, SHUFFLE_KEYED),
    ("cuda:1", False, SHUFFLE_KEYED),
    ("mps", False, SHUFFLE_KEYED),
])
def test_recipe_follows_where_the_study_may_train(device, gpu, recipe):
    assert shuffle_for(device, gpu=gpu) == recipe


def test_gpu_visible_from_device_nodes(tmp_path: Path):
    assert not gpu_visible(tmp_path, {})
    (tmp_path / "nvidia0").touch()
    assert gpu_visible(tmp_path, {})
    assert not gpu_visible(tmp_path, {"CUDA_VISIBLE_DEVICES": ""})
    assert not gpu_visible(tmp_path, {"CUDA_VISIBLE_DEVICES": "-1"})


def test_spec_records_the_recipe_and_old_specs_draw():
    keyed = StudySpec(shuffle=SHUFFLE_KEYED)
    assert StudySpec.from_dict(keyed.to_dict()).shuffle == SHUFFLE_KEYED
    drawn = StudySpec().to_dict()
    assert "shuffle" not in drawn  # a study shuffling as before keeps its stored shape
    assert StudySpec.from_dict(drawn).shuffle == SHUFFLE_DRAWN


def test_runner_trains_with_the_studys_recorded_recipe(tmp_path: Path):
    """A study recorded with recipe 2 trains (here, on the CPU) exactly as the reference with
    recipe 2; the same study recorded with recipe 1 as the reference with recipe 1."""
    from engine.presets import load_preset
    from engine.run import RunnerOptions
    from engine.run.local import LocalExecutor
    from engine.run.runner import StopFlag, run_study
    from engine.store import Store
    from tui import services

    preset_file = tmp_path / "p.toml"
    preset_file.write_text('[data]\ntrain_size = 200\nval_size = 100\n'
                           '[train]\nepochs = 2\nlr = 0.05\n[study]\nseeds = 2\n')
    preset = load_preset(preset_file)
    store = Store(tmp_path / "store.db")
    splits = load_splits(preset.config.data)
    for recipe in (SHUFFLE_KEYED, SHUFFLE_DRAWN):
        keyed = dataclasses.replace(preset, study=dataclasses.replace(preset.study,
                                                                       shuffle=recipe))
        study_id = store.create_study(
            name=None, preset_name="p", preset_path=None, preset_text=preset.text,
            strategy="single", seed=0, baseline=keyed.config.to_dict(),
            spec=keyed.study.to_dict(), device="cpu",
            trials=[(keyed.config.to_dict(), s, r) for r, s in enumerate((5, 6))])
        assert run_study(store, study_id, RunnerOptions(device="cpu"), 1, StopFlag(),
                         executor=LocalExecutor(1)) == 0
        for row in store.trials(study_id):
            ref = train_reference(Trial(preset.config, row.seed, recipe), splits)
            assert row.val_acc == pytest.approx(ref.history[-1].val_acc, abs=0.011)
            assert row.train_loss == pytest.approx(ref.history[-1].train_loss, rel=1e-4)
    # the CLI's and the app's way: the recipe for where the study may train
    on_cpu = services.create_study(store, preset, device="cpu")
    on_gpu = services.create_study(store, preset, device="cuda")
    assert "shuffle" not in store.study(on_cpu).spec
    assert StudySpec.from_dict(store.study(on_gpu).spec).shuffle == SHUFFLE_KEYED
    from engine.study.report import study_dict

    assert study_dict(store, store.study(on_gpu))["shuffle"] == SHUFFLE_KEYED  # show --json
    assert study_dict(store, store.study(on_cpu))["shuffle"] == SHUFFLE_DRAWN
    assert services.study_key({}, store.study(on_cpu).spec) == services.study_key(
        {}, store.study(on_gpu).spec)  # the ETA's identical studies: the recipe left out
