"""What the trainer's tests share."""

from __future__ import annotations

import math

import torch

from engine.train import TrialOutcome


def assert_identical(a: TrialOutcome, b: TrialOutcome) -> None:
    assert a.status == b.status and a.diverged_epoch == b.diverged_epoch
    assert len(a.history) == len(b.history)
    for ma, mb in zip(a.history, b.history, strict=True):
        for x, y in ((ma.train_loss, mb.train_loss), (ma.val_loss, mb.val_loss),
                     (ma.val_acc, mb.val_acc)):
            assert x == y or (math.isnan(x) and math.isnan(y))
    for (wa, ba), (wb, bb) in zip(a.weights, b.weights, strict=True):
        assert torch.equal(wa, wb) and torch.equal(ba, bb)
