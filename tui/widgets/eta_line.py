"""The Run screen's clock: how long the runner has trained, and how long it has left."""

from __future__ import annotations

import math
import time

from textual.timer import Timer
from textual.widgets import Static

from engine.study import eta

TICK_SECONDS = 1.0  # the clock's resolution; it ticks only while a runner trains


class EtaLine(Static):
    """`elapsed 0:12 · ~0:21 left`, refined live (`LiveEta`) from the trial-epochs done.

    `estimated` gives the estimate made when watching began (the CLI's, for what was left);
    `follow` each poll's progress and the runner's start (its lease, in epoch seconds). A
    study that grows (rounds of seeds, batches of a sampler) plans its work as it goes: its
    line says what is left of the round, or, when the same study ran here before, of the
    study as it went then."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__("", **kwargs)  # type: ignore[arg-type]
        self._opened = time.monotonic()
        self._live = eta.LiveEta(None)
        self._grows = False
        self._same_took: float | None = None
        self._progress = (0, 0)
        self._started: float | None = None
        self._ended_after: float | None = None
        self._timer: Timer | None = None
        self._shown_text = ""

    def estimated(self, prior: float | None, *, grows: bool,
                  same_took: float | None) -> None:
        self._live = eta.LiveEta(prior)
        self._grows, self._same_took = grows, same_took

    def follow(self, done: int, total: int, *, alive: bool, started: float | None) -> None:
        self._progress = (done, total)
        if alive and started is not None:
            self._started, self._ended_after = started, None
        elif self._started is not None:  # the runner we were timing has ended
            self._ended_after, self._started = time.time() - self._started, None
        self._live.left(time.monotonic() - self._opened, done, total)  # a rate sample
        if self._started is not None and self._timer is None:
            self._timer = self.set_interval(TICK_SECONDS, self._tick)
        elif self._started is None and self._timer is not None:
            self._timer.stop()
            self._timer = None
        self._tick()

    def text(self) -> str:
        if self._ended_after is not None:
            return f"trained for {eta.format_clock(self._ended_after)}"
        if self._started is None:
            return ""
        done, total = self._progress
        elapsed = time.time() - self._started
        left = self._live.left(time.monotonic() - self._opened, done, total)
        line = f"elapsed {eta.format_clock(elapsed)}"
        if left is None:
            return line
        where = ""
        if self._grows and self._same_took is not None:
            # the rounds to come are not planned yet; the same study grew through them before
            left, where = max(left, self._same_took - elapsed), ", as last time"
        elif self._grows:
            where = " in this round"
        return f"{line} · ~{eta.format_clock(math.ceil(left))} left{where}"  # 0:00: done

    def _tick(self) -> None:
        text = self.text()
        if text != self._shown_text:
            self._shown_text = text
            self.update(text)
