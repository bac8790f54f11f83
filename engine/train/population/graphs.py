"""The eager step captured as a CUDA graph: one replay instead of ~50 kernel launches.

On a GPU a notebook step is launch-bound up to thousands of trials (~50 small kernels, each
launched from Python). A CUDA graph records them once and replays them with one launch; a
replay reads and writes the very addresses it recorded, so the step must keep every tensor it
touches where it is. `GraphStep` wraps a `FlatStep` to that end: the inputs are copied into
buffers of its own, and the state that `FlatStep` replaces (its optimizer state, the trials'
active mask) is copied back into the tensors it had before, so nothing moves from step to step
or epoch to epoch (the loop resets the epoch's mask and loss sum in place).

On CUDA, after WARMUP eager calls on a side stream (as torch's graph docs ask), the next call is
captured and then replayed; every later call copies its inputs and replays. Elsewhere (the CPU)
nothing is captured: the same address-keeping step runs eagerly, which is how the tests check,
without a GPU, that the numbers are those of `FlatStep` and that no address moves.

Off by default until measured on a GPU: `train_population(graphs=True)`, or
`HP_TUI_CUDA_GRAPHS=1` in the environment of the runner (its workers inherit it).
"""

from __future__ import annotations

import os

import torch

from engine.train.population.state import FlatStep

__all__ = ["WARMUP", "GraphStep", "graphs_wanted"]

WARMUP = 3  # eager calls before the capture: lazy initialisations happen outside the graph


def graphs_wanted(graphs: bool | None, device: torch.device) -> bool:
    """Whether a population's eager step goes through `GraphStep`: as asked, else from the
    environment, and then on CUDA only (capture needs it)."""
    if graphs is None:
        return device.type == "cuda" and os.environ.get("HP_TUI_CUDA_GRAPHS") == "1"
    return graphs


class GraphStep:
    """A FlatStep whose tensors keep their addresses; captured and replayed on CUDA when
    `capture` (the full steps), run eagerly otherwise (the partial last batch, whose shape is
    another, shares the FlatStep and keeps the same addresses)."""

    def __init__(self, flat: FlatStep, capture: bool) -> None:
        self.flat, self.pop = flat, flat.pop
        self.capture = capture and flat.pop.device.type == "cuda"
        self.inputs: list[torch.Tensor] | None = None
        self.graph: torch.cuda.CUDAGraph | None = None
        self.calls = 0

    def put_back(self) -> None:
        self.flat.put_back()

    def __call__(self, x: torch.Tensor, y: torch.Tensor, eta: torch.Tensor, bc2s: torch.Tensor,
                 weight: torch.Tensor) -> None:
        given = (x, y, eta, bc2s, weight)
        if self.inputs is None:
            self.inputs = [t.clone() for t in given]
        else:
            for mine, t in zip(self.inputs, given, strict=True):
                mine.copy_(t)
        if self.graph is not None:
            self.graph.replay()
        elif not self.capture:
            self._run()
        elif self.calls < WARMUP:
            side = torch.cuda.Stream(self.pop.device)
            side.wait_stream(torch.cuda.current_stream(self.pop.device))
            with torch.cuda.stream(side):
                self._run()
            torch.cuda.current_stream(self.pop.device).wait_stream(side)
        else:
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph):
                self._run()
            self.graph.replay()  # capturing recorded the step without running it
        self.calls += 1

    def _run(self) -> None:
        """The FlatStep on the static inputs, then what it replaced copied back in place."""
        flat, pop = self.flat, self.pop
        assert self.inputs is not None
        kept = {name: getattr(flat, name) for name in ("m", "v", "u")}
        active = pop.active
        flat(*self.inputs)
        for name, old in kept.items():
            new = getattr(flat, name)
            if old is not None and new is not old:
                old.copy_(new)
                setattr(flat, name, old)
        if pop.active is not active:
            active.copy_(pop.active)
            pop.active = active
