"""The math of one training step of a population, on flat tensor arguments.

A group's Spec, the elementwise math (activations, losses and their hand-written gradients), the
narrow (trial last) and wide (trial first) layouts (see the package docstring), the step program
(`Program`: forward, backward, optimizer update, freezing; the slots of its state) and the narrow
validation program (`ValProgram`). Pure tensor math, kept apart from the population's state, its
data and the compiler so that it can be read, tested and traced as one unit.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import torch

from engine.spec import TrialConfig

_EPS = 1e-8


# --- the static program of a group ------------------------------------------------------------


@dataclass(frozen=True)
class Spec:
    """What a group's step program depends on; one compiled program per distinct Spec."""

    layout: str  # "narrow" (trial last) | "wide" (trial first, bmm)
    depth: int  # number of Linear layers
    activations: tuple[str, ...]  # kinds present, sorted
    losses: tuple[str, ...]
    optimizers: tuple[str, ...]  # among "adam" (adam and adamw), "rmsprop", "sgd"
    momentum: bool  # some sgd/rmsprop trial has momentum > 0
    l2: bool  # some trial has coupled weight decay (sgd, adam, rmsprop)
    decoupled: bool  # some adamw trial has weight decay
    unit_mask: bool  # padded units and a sigmoid activation: mask the padded activations


def spec_for(configs: Sequence[TrialConfig], layout: str, padded: bool) -> Spec:
    optims = {"adam" if c.optimizer == "adamw" else c.optimizer for c in configs}
    acts = tuple(sorted({c.activation for c in configs}))
    return Spec(
        layout=layout,
        depth=len(configs[0].hidden) + 1,
        activations=acts,
        losses=tuple(sorted({c.loss for c in configs})),
        optimizers=tuple(sorted(optims)),
        momentum=any(c.momentum > 0 and c.optimizer in ("sgd", "rmsprop") for c in configs),
        l2=any(c.weight_decay > 0 and c.optimizer != "adamw" for c in configs),
        decoupled=any(c.weight_decay > 0 and c.optimizer == "adamw" for c in configs),
        unit_mask=padded and "sigmoid" in acts,
    )


# --- elementwise math (layout-agnostic: per-trial vectors are pre-shaped to broadcast) --------


def _act(kind: str, h: torch.Tensor) -> torch.Tensor:
    if kind == "relu":
        return torch.relu(h)
    if kind == "sigmoid":
        return torch.sigmoid(h)
    if kind == "tanh":
        return torch.tanh(h)
    if kind == "leaky_relu":
        return torch.where(h > 0, h, h * 0.01)
    if kind == "elu":
        return torch.where(h > 0, h, torch.expm1(h))
    if kind == "gelu":
        return h * 0.5 * (1.0 + torch.erf(h * math.sqrt(0.5)))
    if kind == "silu":
        return h * torch.sigmoid(h)
    raise ValueError(f"unknown activation {kind!r}")


def _act_grad(kind: str, da: torch.Tensor, h: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """d(loss)/dh from d(loss)/da; formulas follow ATen's backward kernels, which are called
    where they give the same numbers as the formula (one op instead of two or three; relu's,
    a compare and a select, was ~20% of the notebook's eager step)."""
    if kind == "relu":  # where(a > 0, da, 0)
        return torch.ops.aten.threshold_backward(da, a, 0)
    if kind == "sigmoid":  # da * (1 - a) * a
        return torch.ops.aten.sigmoid_backward(da, a)
    if kind == "tanh":
        return da * (1 - a * a)
    if kind == "leaky_relu":  # where(h > 0, da, da * 0.01)
        return torch.ops.aten.leaky_relu_backward(da, h, 0.01, False)
    if kind == "elu":
        return torch.where(h > 0, da, da * torch.exp(h))
    if kind == "gelu":
        cdf = 0.5 * (1.0 + torch.erf(h * math.sqrt(0.5)))
        pdf = torch.exp(-0.5 * h * h) * (2 / math.sqrt(math.pi) * math.sqrt(0.5) * 0.5)
        return da * (cdf + h * pdf)
    if kind == "silu":
        s = torch.sigmoid(h)
        return da * s * (1 + h * (1 - s))
    raise ValueError(f"unknown activation {kind!r}")


def _select(kinds: tuple[str, ...], masks: dict[str, torch.Tensor],
            fn: Callable[[str], torch.Tensor]) -> torch.Tensor:
    """fn(kind) for the kinds present, each trial taking its own (where-selected)."""
    out = fn(kinds[0])
    for kind in kinds[1:]:
        out = torch.where(masks[kind], fn(kind), out)
    return out


def _loss_elems(kind: str, z: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(per-sample loss, d(loss)/dz per sample before the 1/batch mean)."""
    if kind == "bce_with_logits":
        loss = (1 - y) * z - torch.nn.functional.logsigmoid(z)
        return loss, torch.sigmoid(z) - y
    p = torch.sigmoid(z)
    sigmoid_backward = torch.ops.aten.sigmoid_backward  # g * (1 - p) * p, in one op
    if kind == "mse":
        d = p - y
        return d * d, sigmoid_backward(2 * d, p)
    if kind == "bce":
        loss = -(y * torch.clamp(torch.log(p), min=-100)
                 + (1 - y) * torch.clamp(torch.log(1 - p), min=-100))
        # BCELoss's backward divides by max(p(1-p), 1e-12): zero gradient once sigmoid saturates
        return loss, sigmoid_backward((p - y) / torch.clamp((1 - p) * p, min=1e-12), p)
    raise ValueError(f"unknown loss {kind!r}")


def _loss_value(kind: str, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return _loss_elems(kind, z, y)[0]


# --- layouts --------------------------------------------------------------------------------


class _Narrow:
    """Trial index last: x [B, I, N], W [O, I, N], b [O, N], per-trial vectors [N]."""

    @staticmethod
    def linear(a: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (a.unsqueeze(1) * w).sum(2) + b

    @staticmethod
    def grads(d: torch.Tensor, a: torch.Tensor, out: Tensors | None = None
              ) -> tuple[torch.Tensor, torch.Tensor]:
        if out is not None:  # the eager step's flat gradient buffer
            return (torch.sum(d.unsqueeze(2) * a.unsqueeze(1), 0, out=out[0]),
                    torch.sum(d, 0, out=out[1]))
        return (d.unsqueeze(2) * a.unsqueeze(1)).sum(0), d.sum(0)

    @staticmethod
    def back(d: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        if w.shape[0] == 1:  # from the output layer: the same products, no sum of one term
            return d * w
        return (d.unsqueeze(2) * w).sum(1)

    @staticmethod
    def batch_sum(t: torch.Tensor) -> torch.Tensor:  # [B, 1, N] -> [N]
        return t.sum((0, 1))

    @staticmethod
    def trial_sum(t: torch.Tensor) -> torch.Tensor:  # param -> [N]
        return t.reshape(-1, t.shape[-1]).sum(0)


class _Wide:
    """Trial index first: x [N, B, I], W [N, O, I], b [N, 1, O], per-trial vectors [N, 1, 1]."""

    @staticmethod
    def linear(a: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(b, a, w.transpose(1, 2))

    @staticmethod
    def grads(d: torch.Tensor, a: torch.Tensor, out: Tensors | None = None
              ) -> tuple[torch.Tensor, torch.Tensor]:
        # the output layer (one unit): a product summed over the batch, half of bmm's cost for
        # these tiny matrices
        gw = ((d * a).sum(1, keepdim=True) if d.shape[2] == 1
              else torch.bmm(d.transpose(1, 2), a))
        if out is not None:  # the eager step's flat buffer (bmm into its strided views: 3x slower)
            return out[0].copy_(gw), torch.sum(d, 1, keepdim=True, out=out[1])
        return gw, d.sum(1, keepdim=True)

    @staticmethod
    def back(d: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        if w.shape[1] == 1:  # from the output layer: the products bmm would form, ~10x cheaper
            return d * w
        return torch.bmm(d, w)

    @staticmethod
    def batch_sum(t: torch.Tensor) -> torch.Tensor:  # [N, B, 1] -> [N, 1, 1]
        return t.sum((1, 2), keepdim=True)

    @staticmethod
    def trial_sum(t: torch.Tensor) -> torch.Tensor:  # param -> [N, 1, 1]
        return t.sum((1, 2), keepdim=True)


_LAYOUTS: dict[str, type[_Narrow] | type[_Wide]] = {"narrow": _Narrow, "wide": _Wide}


# --- one training step ------------------------------------------------------------------------

Tensors = list[torch.Tensor]
StepFn = Callable[..., tuple[torch.Tensor, ...]]

# The last two slots of a step's state (Program's arguments and results, Population.state), per
# trial in the layout's vector shape:
ACTIVE = -2  # bool: trains this epoch and has stayed finite
LOSS_SUM = -1  # float64: the epoch's training loss so far (each batch's loss times its share)


class Program:
    """The step program of a Spec: forward, hand-written backward, optimizer update, freezing.

    It works on flat tensor arguments so that a compiled version is called with no pytree work:
        step(*state, *consts, x, y, eta, bc2s, weight) -> new state (a tuple)
    state = params [W0, b0, W1, b1, ...] + m + v + u (optimizer state, each present only when a
    kind of the group needs it) + [active, acc] (the ACTIVE and LOSS_SUM slots); consts = the
    per-trial hyperparameter tensors in `hp_keys` order; x, y = this step's batch (x [B, F, N]
    narrow, [N, B, F] wide; y [B, 1, N] in both); eta = this step's per-trial step size; bc2s =
    Adam's sqrt(1 - beta2^t); weight = the batch's share of the epoch (acc += batch loss * weight).
    """

    def __init__(self, spec: Spec, hp_keys: Sequence[str]) -> None:
        self.spec, self.keys = spec, tuple(hp_keys)
        self.lay = _LAYOUTS[spec.layout]
        n_params = 2 * spec.depth
        uses_v = "adam" in spec.optimizers or "rmsprop" in spec.optimizers
        counts = [n_params, n_params * ("adam" in spec.optimizers), n_params * uses_v,
                  n_params * spec.momentum]
        ends = [sum(counts[: i + 1]) for i in range(4)]
        self.slices = [slice(a, b) for a, b in zip([0, *ends[:-1]], ends, strict=True)]
        self.n_state = ends[-1] + 2  # + ACTIVE, LOSS_SUM

    def __call__(self, *args: torch.Tensor) -> tuple[torch.Tensor, ...]:
        spec, lay = self.spec, self.lay
        params, m, v, u = (list(args[s]) for s in self.slices)
        active, acc = args[self.n_state + ACTIVE], args[self.n_state + LOSS_SUM]
        k = self.n_state + len(self.keys)
        hp = dict(zip(self.keys, args[self.n_state : k], strict=True))
        x, y, eta, bc2s, weight = args[k : k + 5]
        batch_loss, grads = self.loss_and_grads(params, hp, x, y)
        new_p, new_m, new_v, new_u = [], [], [], []
        for i, (p, g) in enumerate(zip(params, grads, strict=True)):
            p2, m2, v2, u2 = optimizer_update(spec, p, g, m[i] if m else None,
                                              v[i] if v else None, u[i] if u else None, hp, eta,
                                              bc2s)
            new_p.append(p2)
            new_m += [m2] if m2 is not None else []
            new_v += [v2] if v2 is not None else []
            new_u += [u2] if u2 is not None else []
        # a trial whose loss or new weights are non-finite stops here, keeping its old weights
        total = batch_loss
        for p2 in new_p:
            total = total + lay.trial_sum(p2)
        still = active & torch.isfinite(total)
        out_p = [torch.where(still, p2, p) for p2, p in zip(new_p, params, strict=True)]
        acc = acc + batch_loss.to(acc.dtype) * weight
        return (*out_p, *new_m, *new_v, *new_u, still, acc)  # still at ACTIVE, acc at LOSS_SUM

    def loss_and_grads(self, params: Tensors, hp: dict[str, torch.Tensor], x: torch.Tensor,
                        y: torch.Tensor, grad_out: Tensors | None = None
                        ) -> tuple[torch.Tensor, Tensors]:
        """Per-trial mean batch loss and the gradients of every parameter (written into
        grad_out when given)."""
        spec, lay = self.spec, self.lay
        ins, pre = [x], []
        a, z = x, x
        for layer in range(spec.depth):
            z = lay.linear(a, params[2 * layer], params[2 * layer + 1])
            if layer < spec.depth - 1:
                h = z
                a = _select(spec.activations, hp, partial(_act, h=h))
                if spec.unit_mask:
                    a = a * hp[f"units{layer}"]
                pre.append(h)
                ins.append(a)
        # the loss is computed trial-last in both layouts ([B, 1, N], N a multiple of LANES), so
        # that its transcendental ops never hit a scalar tail whose rounding depends on N
        if spec.layout == "wide":
            z = z.permute(1, 2, 0).contiguous()
        batch = z.shape[0]
        elems = [_loss_elems(kind, z, y) for kind in spec.losses]
        loss_e, dz = elems[0]
        for kind, (le, dk) in zip(spec.losses[1:], elems[1:], strict=True):
            loss_e, dz = torch.where(hp[kind], le, loss_e), torch.where(hp[kind], dk, dz)
        d = dz * (1.0 / batch)
        if spec.layout == "wide":
            d = d.permute(2, 0, 1).contiguous()
        grads: Tensors = [z] * len(params)  # placeholders, all replaced below
        for layer in reversed(range(spec.depth)):
            outs = grad_out[2 * layer : 2 * layer + 2] if grad_out is not None else None
            grads[2 * layer], grads[2 * layer + 1] = lay.grads(d, ins[layer], outs)
            if layer > 0:
                da = lay.back(d, params[2 * layer])
                d = _select(spec.activations, hp,
                            partial(_act_grad, da=da, h=pre[layer - 1], a=ins[layer]))
        batch_loss = loss_e.sum((0, 1)) / batch
        return batch_loss.view(-1, *([1] * (x.dim() - 1))) if spec.layout == "wide" \
            else batch_loss, grads


class ValProgram:
    """Validation of one chunk of samples for every lane of a narrow population:
        val(*params, *consts, x [c, F, 1], y [c, 1, 1]) -> (loss sum [N], hits [N]) (float64)
    Compiled alongside the step when the step is, since eagerly it costs ~15% of an epoch."""

    def __init__(self, spec: Spec, hp_keys: Sequence[str]) -> None:
        self.spec, self.keys = spec, tuple(hp_keys)
        self.n_params = 2 * spec.depth

    def __call__(self, *args: torch.Tensor) -> tuple[torch.Tensor, ...]:
        params = list(args[: self.n_params])
        k = self.n_params + len(self.keys)
        hp = dict(zip(self.keys, args[self.n_params : k], strict=True))
        a, ys = args[k], args[k + 1]
        return val_sums(self.spec, hp, forward(self.spec, params, a, hp), ys)


def val_sums(spec: Spec, hp: dict[str, torch.Tensor], z: torch.Tensor, y: torch.Tensor
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss sum [N], hits [N]) in float64 of trial-last logits z [c, 1, N] against y [c, 1, 1],
    each trial with its own loss."""
    le = _select(spec.losses, hp, partial(_loss_value, z=z, y=y))
    hits = (torch.round(torch.sigmoid(z)) == y).sum((0, 1), dtype=torch.float64)
    return le.sum((0, 1), dtype=torch.float64), hits


def forward(spec: Spec, params: Tensors, a: torch.Tensor, hp: dict[str, torch.Tensor]
            ) -> torch.Tensor:
    """Logits of a population on inputs `a` in its layout. Padded units need no mask here:
    their outgoing weights are zero."""
    lay = _LAYOUTS[spec.layout]
    z = a
    for layer in range(spec.depth):
        z = lay.linear(a, params[2 * layer], params[2 * layer + 1])
        if layer < spec.depth - 1:
            a = _select(spec.activations, hp, partial(_act, h=z))
    return z


def optimizer_update(
    spec: Spec, p: torch.Tensor, g: torch.Tensor, m: torch.Tensor | None, v: torch.Tensor | None,
    u: torch.Tensor | None, hp: dict[str, torch.Tensor], eta: torch.Tensor, bc2s: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
    """torch.optim's single-tensor updates, per trial; p - eta * direction."""
    kinds = spec.optimizers
    if spec.l2:
        g = g + hp["wd"] * p
    root_v: torch.Tensor | None = None
    if v is not None:  # adam's exp_avg_sq and rmsprop's square_avg play the same role
        v = torch.addcmul(v * hp["beta2"], g * g, hp["omb2"])  # v * beta2 + g^2 * (1 - beta2)
        root_v = v.sqrt()
    direction: torch.Tensor | None = None
    if "adam" in kinds:
        assert m is not None and root_v is not None
        m = torch.lerp(m, g, hp["omb1"])  # exp_avg.lerp_(grad, 1 - beta1), as torch.optim
        direction = m / (root_v / bc2s + _EPS)
    if "sgd" in kinds or "rmsprop" in kinds:
        if "rmsprop" not in kinds:
            q = g
        else:
            assert root_v is not None
            rms = g / (root_v + _EPS)
            q = torch.where(hp["rmsprop"], rms, g) if "sgd" in kinds else rms
        if spec.momentum:
            assert u is not None
            u = u * hp["momentum"] + q
            q = u
        direction = q if direction is None else torch.where(hp["adam"], direction, q)
    assert direction is not None
    base = p * hp["decay"] if spec.decoupled else p
    return base - eta * direction, m, v, u

