"""The notebook's per-trial training loop: the correctness oracle and the benchmark baseline.

One trial at a time, the way the workshop notebook does it: `nn.Linear` layers, autograd and
`torch.optim`. The population trainer must end with the same weights as this
loop for the same trial, within float32 round-off, so the seed recipe below is shared by both:

    g = torch.Generator().manual_seed(trial.seed)
    for each layer, in order: W = uniform(-k, k) of shape [out, in], then b = uniform(-k, k) of
        shape [out], both drawn from g, with k = 1 / sqrt(fan_in) (nn.Linear's default range)
    each epoch: perm = the trial's shuffle, by its study's recipe (`engine.train.shuffles`):
        1, torch.randperm(n_train, generator=g), drawn after the weights; 2, a keyed bijection of
        the rows from (trial.seed, epoch); batches are consecutive slices of perm, the last one
        possibly partial

Learning-rate schedules come from torch.optim.lr_scheduler (`make_scheduler`), stepped after
each epoch, so that this loop stays independent of the closed forms the population uses.

Divergence: a non-finite batch loss, or non-finite weights after a step, marks the trial diverged at
that epoch. It keeps its last finite weights; that epoch's train loss is nan, and its validation
metrics are those of the kept weights.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from engine.spec import SHUFFLE_DRAWN, SHUFFLE_RECIPES, TrialConfig
from engine.train.data import Split, Splits
from engine.train.shuffles import keyed_permutations

Weights = list[tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class Trial:
    config: TrialConfig
    seed: int
    shuffle: int = SHUFFLE_DRAWN  # its study's shuffle recipe (engine.spec.seeds)

    def __post_init__(self) -> None:
        if self.shuffle not in SHUFFLE_RECIPES:
            raise ValueError(f"unknown shuffle recipe {self.shuffle}: one of {SHUFFLE_RECIPES}")


@dataclass(frozen=True)
class EpochMetrics:
    train_loss: float
    val_loss: float
    val_acc: float


@dataclass
class TrialOutcome:
    status: str  # "completed" | "diverged"
    history: list[EpochMetrics] = field(default_factory=list)
    weights: Weights = field(default_factory=list)
    diverged_epoch: int | None = None  # 0-based


ACTIVATION_MODULES: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "leaky_relu": nn.LeakyReLU,  # negative slope 0.01
    "elu": nn.ELU,  # alpha 1
    "gelu": nn.GELU,  # exact (erf)
    "silu": nn.SiLU,
}


def init_weights(layers: Sequence[int], generator: torch.Generator) -> Weights:
    """Initial weights of the shared seed recipe: per layer W then b, uniform(+-1/sqrt(fan_in))."""
    weights = []
    for fan_in, fan_out in itertools.pairwise(layers):
        bound = 1.0 / math.sqrt(fan_in)
        w = torch.empty(fan_out, fan_in).uniform_(-bound, bound, generator=generator)
        b = torch.empty(fan_out).uniform_(-bound, bound, generator=generator)
        weights.append((w, b))
    return weights


def build_model(config: TrialConfig, n_features: int) -> nn.Module:
    """The notebook's MLP: Linear layers, the activation after each hidden one, a logit output."""
    sizes = config.layers(n_features)
    modules: list[nn.Module] = []
    for i, (fan_in, fan_out) in enumerate(itertools.pairwise(sizes)):
        modules.append(nn.Linear(fan_in, fan_out))
        if i < len(sizes) - 2:
            modules.append(ACTIVATION_MODULES[config.activation]())
    return nn.Sequential(*modules)


def load_weights(model: nn.Module, weights: Weights) -> None:
    """Copy a weights list into the Linear layers of `model`, in order."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    with torch.no_grad():
        for layer, (w, b) in zip(linears, weights, strict=True):
            layer.weight.copy_(w)
            layer.bias.copy_(b)


def model_weights(model: nn.Module) -> Weights:
    """The Linear layers' weights as detached CPU float32 copies."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return [(m.weight.detach().to("cpu", torch.float32).clone(),
             m.bias.detach().to("cpu", torch.float32).clone()) for m in linears]


@torch.no_grad()
def predict_logits(
    weights: Weights, x: torch.Tensor, activation: str | TrialConfig
) -> torch.Tensor:
    """Logits [n] of the network stored as `weights` on inputs x [n, features].

    `activation` is the trial's activation name (or its config): the weights alone do not say it.
    """
    name = activation.activation if isinstance(activation, TrialConfig) else activation
    act = ACTIVATION_MODULES[name]()
    h = x.to(torch.float32)
    for i, (w, b) in enumerate(weights):
        h = F.linear(h, w.to(h.device), b.to(h.device))
        if i < len(weights) - 1:
            h = act(h)
    return h.squeeze(-1)


def loss_from_logits(logits: torch.Tensor, y: torch.Tensor, loss: str) -> torch.Tensor:
    """The notebook's criteria: mse and bce on sigmoid(logit), bce_with_logits on the logit."""
    if loss == "mse":
        return F.mse_loss(torch.sigmoid(logits), y)
    if loss == "bce":
        return F.binary_cross_entropy(torch.sigmoid(logits), y)
    if loss == "bce_with_logits":
        return F.binary_cross_entropy_with_logits(logits, y)
    raise ValueError(f"unknown loss {loss!r}")


def accuracy(logits: torch.Tensor, y: torch.Tensor) -> float:
    """Share of rounded sigmoid outputs equal to the label (the notebook's get_accuracy)."""
    hits = int((torch.round(torch.sigmoid(logits)) == y).sum())
    return hits / max(1, int(y.numel()))


@torch.no_grad()
def evaluate(weights: Weights, config: TrialConfig, split: Split) -> tuple[float, float]:
    """(loss, accuracy) of stored weights on a split."""
    logits = predict_logits(weights, split.x, config.activation)
    y = split.y.to(logits.device)
    return float(loss_from_logits(logits, y, config.loss)), accuracy(logits, y)


def make_optimizer(config: TrialConfig, params: list[nn.Parameter]) -> torch.optim.Optimizer:
    """torch.optim with the notebook's knobs; every other setting stays at torch's default."""
    name, lr, wd = config.optimizer, config.lr, config.weight_decay
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=config.momentum, weight_decay=wd)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=wd)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=wd)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, momentum=config.momentum, weight_decay=wd)
    raise ValueError(f"unknown optimizer {name!r}")


def make_scheduler(config: TrialConfig, optimizer: torch.optim.Optimizer
                   ) -> torch.optim.lr_scheduler.LRScheduler | None:
    """torch's own schedulers for the trial's schedule, stepped once per epoch (None: a constant
    lr without warm-up). The warm-up is LinearLR from 1 / (W + 1) to 1 over W epochs, chained
    before the schedule by SequentialLR; the cosine runs over the epochs after the warm-up."""
    sched = torch.optim.lr_scheduler
    warm = config.warmup_epochs
    main: sched.LRScheduler | None = None
    if config.schedule == "step":
        main = sched.StepLR(optimizer, step_size=config.step_epochs, gamma=config.gamma)
    elif config.schedule == "cosine":
        main = sched.CosineAnnealingLR(optimizer, T_max=max(1, config.epochs - warm),
                                       eta_min=config.min_lr)
    if warm == 0:
        return main
    ramp = sched.LinearLR(optimizer, start_factor=1 / (warm + 1), end_factor=1.0,
                          total_iters=warm)
    if main is None:
        return ramp  # it stays at end_factor (1) after its last epoch
    return sched.SequentialLR(optimizer, [ramp, main], milestones=[warm])


def train_reference(
    trial: Trial,
    splits: Splits,
    device: torch.device | str = "cpu",
    on_epoch: Callable[[int, EpochMetrics], None] | None = None,
) -> TrialOutcome:
    """Train one trial the notebook's way; see the module docstring for the seed recipe."""
    cfg = trial.config
    device = torch.device(device)
    g = torch.Generator().manual_seed(trial.seed)
    model = build_model(cfg, splits.n_features)
    load_weights(model, init_weights(cfg.layers(splits.n_features), g))
    model.to(device)
    params = list(model.parameters())
    optimizer = make_optimizer(cfg, params)
    scheduler = make_scheduler(cfg, optimizer)
    x, y = splits.train.x.to(device), splits.train.y.to(device)
    n = len(splits.train)
    outcome = TrialOutcome(status="completed")
    for epoch in range(cfg.epochs):
        perm = (torch.randperm(n, generator=g).to(device) if trial.shuffle == SHUFFLE_DRAWN
                else keyed_permutations([trial.seed], epoch, n, device)[0])
        train_loss = _train_epoch(model, optimizer, params, x[perm], y[perm], cfg)
        weights = model_weights(model)
        val_loss, val_acc = evaluate(weights, cfg, splits.val)
        metrics = EpochMetrics(train_loss, val_loss, val_acc)
        outcome.history.append(metrics)
        outcome.weights = weights
        if on_epoch is not None:
            on_epoch(epoch, metrics)
        if math.isnan(train_loss):
            outcome.status, outcome.diverged_epoch = "diverged", epoch
            break
        if scheduler is not None:
            scheduler.step()
    return outcome


def _train_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    params: list[nn.Parameter],
    x: torch.Tensor,
    y: torch.Tensor,
    cfg: TrialConfig,
) -> float:
    """One pass over pre-shuffled data; returns the mean sample loss, or nan if it diverged."""
    n = int(x.shape[0])
    total = 0.0
    for start in range(0, n, cfg.batch_size):
        xb, yb = x[start : start + cfg.batch_size], y[start : start + cfg.batch_size]
        loss = loss_from_logits(model(xb).squeeze(1), yb, cfg.loss)
        value = loss.item()
        if not math.isfinite(value):
            return math.nan  # the weights are still the last finite ones
        optimizer.zero_grad()
        loss.backward()
        # keep the pre-step weights: a step that overflows them is undone (frozen state)
        before = [p.detach().clone() for p in params]
        optimizer.step()
        if not all(bool(torch.isfinite(p).all()) for p in params):
            with torch.no_grad():
                for p, old in zip(params, before, strict=True):
                    p.copy_(old)
            return math.nan
        total += value * len(yb) / n
    return total
