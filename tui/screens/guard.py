"""A store read that fails while a screen opens becomes a notification, never a traceback."""

from __future__ import annotations

from textual.screen import Screen

from engine.store import StoreError


def leave_on_store_error(screen: Screen, error: StoreError, what: str) -> None:
    """Say what failed and go back to the screen below (a half-built screen helps nobody)."""
    app = screen.app
    app.notify(f"{what}: {error}", title="store error", severity="error", timeout=10)

    def leave() -> None:
        if app.screen is screen and len(app.screen_stack) > 1:
            app.pop_screen()

    app.call_later(leave)
