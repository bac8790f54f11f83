"""The notebook's per-trial loop (the oracle) and device selection."""

from __future__ import annotations

import math

import pytest
import torch

from engine.spec.config import DataConfig, TrialConfig
from engine.train.data import load_splits
from engine.train.devices import DeviceError, resolve_device
from engine.train.reference import (
    Trial,
    build_model,
    evaluate,
    init_weights,
    load_weights,
    predict_logits,
    train_reference,
)

pytestmark = pytest.mark.numerics

DATA = DataConfig(train_size=200, val_size=100)


@pytest.fixture(scope="module")
def splits():
    return load_splits(DATA)


def cfg(**kw) -> TrialConfig:
    return TrialConfig(data=DATA, epochs=kw.pop("epochs", 2), **kw)


def test_same_seed_same_result_other_seed_differs(splits):
    a = train_reference(Trial(cfg(), 7), splits)
    b = train_reference(Trial(cfg(), 7), splits)
    c = train_reference(Trial(cfg(), 8), splits)
    assert a.history == b.history
    assert all(torch.equal(x[0], y[0]) and torch.equal(x[1], y[1])
               for x, y in zip(a.weights, b.weights, strict=True))
    assert not torch.equal(a.weights[0][0], c.weights[0][0])


def test_seed_recipe_initial_weights(splits):
    """Initial weights come from the trial's generator, layer by layer, in nn.Linear's range."""
    weights = init_weights((2, 10, 5, 1), torch.Generator().manual_seed(3))
    assert [tuple(w.shape) for w, _ in weights] == [(10, 2), (5, 10), (1, 5)]
    for (w, b), fan_in in zip(weights, (2, 10, 5), strict=True):
        bound = 1 / math.sqrt(fan_in)
        assert float(w.abs().max()) <= bound and float(b.abs().max()) <= bound
    # lr tiny: after one epoch the weights are still (almost) the recipe's
    out = train_reference(Trial(cfg(epochs=1, lr=1e-12, hidden=(10, 5)), 3), splits)
    for (w, b), (w0, b0) in zip(out.weights, weights, strict=True):
        torch.testing.assert_close(w, w0)
        torch.testing.assert_close(b, b0)


def test_history_shape_and_metrics_match_evaluate(splits):
    config = cfg(epochs=3, loss="bce")
    out = train_reference(Trial(config, 1), splits)
    assert out.status == "completed" and out.diverged_epoch is None
    assert len(out.history) == 3
    assert all(math.isfinite(m.train_loss) and 0 <= m.val_acc <= 1 for m in out.history)
    loss, acc = evaluate(out.weights, config, splits.val)
    assert loss == pytest.approx(out.history[-1].val_loss)
    assert acc == out.history[-1].val_acc
    # val accuracy is a count of validation points over their number
    assert (acc * len(splits.val)) == pytest.approx(round(acc * len(splits.val)))


def test_predict_logits_matches_the_model(splits):
    config = cfg(hidden=(6, 4), activation="tanh")
    weights = init_weights(config.layers(2), torch.Generator().manual_seed(0))
    model = build_model(config, 2)
    load_weights(model, weights)
    with torch.no_grad():
        expected = model(splits.val.x).squeeze(1)
    torch.testing.assert_close(predict_logits(weights, splits.val.x, "tanh"), expected)
    torch.testing.assert_close(predict_logits(weights, splits.val.x, config), expected)
    # the activation matters: relu gives other logits for the same weights
    assert not torch.allclose(predict_logits(weights, splits.val.x, "relu"), expected)


def test_train_loss_is_the_sample_mean_including_the_partial_batch(splits):
    """batch 64 on 200 points: 3 full batches and one of 8; train_loss weights each by its size."""
    config = cfg(epochs=1, batch_size=64, lr=1e-12)
    out = train_reference(Trial(config, 5), splits)
    g = torch.Generator().manual_seed(5)
    weights = init_weights(config.layers(2), g)
    perm = torch.randperm(200, generator=g)
    logits = predict_logits(weights, splits.train.x[perm], "relu")
    per_sample = (torch.sigmoid(logits) - splits.train.y[perm]) ** 2
    assert out.history[0].train_loss == pytest.approx(float(per_sample.mean()), rel=1e-5)


def test_divergence_freezes_at_the_last_finite_weights(splits):
    out = train_reference(Trial(cfg(epochs=6, lr=2.0, loss="bce_with_logits"), 0), splits)
    assert out.status == "diverged"
    assert out.diverged_epoch == 2
    assert len(out.history) == 3
    assert math.isnan(out.history[-1].train_loss)
    assert all(math.isfinite(m.train_loss) for m in out.history[:-1])
    assert all(bool(torch.isfinite(w).all() and torch.isfinite(b).all()) for w, b in out.weights)


# --- devices ---------------------------------------------------------------------------------


def test_cpu_and_auto():
    assert resolve_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available() and not torch.backends.mps.is_available():
        assert resolve_device("auto") == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize("name", ["cuda", "cuda:0", "cuda:3"])
def test_absent_cuda_is_a_clear_error(name):
    with pytest.raises(DeviceError, match=r"CUDA is not available on this machine \(torch "):
        resolve_device(name)


@pytest.mark.skipif(torch.backends.mps.is_available(), reason="this machine has MPS")
def test_absent_mps_is_a_clear_error():
    with pytest.raises(DeviceError, match="MPS is not available"):
        resolve_device("mps")


@pytest.mark.parametrize("name", ["bogus", "gpu", "cuda:x", "cuda:-1", ""])
def test_unknown_device(name):
    with pytest.raises(DeviceError, match="unknown device"):
        resolve_device(name)
