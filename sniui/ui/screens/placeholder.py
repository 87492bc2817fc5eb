"""Stands in for a screen whose module cannot be imported, so the rest of the app keeps working."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer, Static


class MissingScreen(Screen):
    def __init__(self, mode: str, reason: str):
        super().__init__()
        self._text = f"The {mode} screen is not available in this build.\n\n{reason}"

    def compose(self) -> ComposeResult:
        yield Static(self._text, classes="missing", markup=False)
        yield Footer()


def missing_screen(mode: str, exc: Exception) -> Screen:
    return MissingScreen(mode, f"{type(exc).__name__}: {exc}")
