"""Screens that follow the store.

A poller is a thread worker (`@work(thread=True, exclusive=True, exit_on_error=False)`) that
reads the store, posts what it read as typed messages (`tui.messages`) and naps; the screen
updates its widgets in the message handlers, so the UI thread never reads the store. While
another screen covers a poller's screen the poll pauses (`on_screen_suspend`) and it goes on
when the screen is shown again (`on_screen_resume`): a buried screen costs nothing.
"""

from __future__ import annotations

import threading
import time

from textual.worker import Worker

from tui.screens.base import AppScreen

PAUSED_CHECK_SECONDS = 0.25  # how soon a paused poll notices that it is shown again


def nap(worker: Worker[None], seconds: float) -> None:
    """Sleep between polls, waking early when cancelled (so quitting never waits a whole poll)."""
    end = time.monotonic() + seconds
    while not worker.is_cancelled and time.monotonic() < end:
        time.sleep(0.05)


class PollingScreen(AppScreen[None]):
    """A screen whose poller calls `wait_until_shown` before each round."""

    def __init__(self) -> None:
        super().__init__()
        self._uncovered = threading.Event()  # cleared while another screen covers this one
        self._uncovered.set()

    @property
    def polling(self) -> bool:
        """Whether the poll runs (the screen is not covered)."""
        return self._uncovered.is_set()

    def on_screen_suspend(self) -> None:
        self._uncovered.clear()

    def on_screen_resume(self) -> None:
        self._uncovered.set()

    def wait_until_shown(self, worker: Worker[None]) -> bool:
        """Block the polling thread while the screen is covered; False once it is cancelled."""
        while not worker.is_cancelled and not self._uncovered.wait(PAUSED_CHECK_SECONDS):
            pass
        return not worker.is_cancelled
