"""A yes/no dialog: every destructive action goes through it."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static


class ConfirmDialog(ModalScreen[bool]):
    DEFAULT_CSS = """
    ConfirmDialog { align: center middle; }
    ConfirmDialog > Vertical {
        width: auto; max-width: 70; min-width: 40; height: auto;
        border: thick $error 60%; background: $surface; padding: 1 2;
    }
    ConfirmDialog #confirm-title { text-style: bold; color: $text-error; margin-bottom: 1; }
    ConfirmDialog #confirm-body { margin-bottom: 1; }
    ConfirmDialog Horizontal { height: auto; align-horizontal: right; }
    ConfirmDialog Button { margin-left: 2; }
    """
    BINDINGS = [
        Binding("y", "answer(True)", "Yes", id="confirm.yes", tooltip="Confirm"),
        Binding("n,escape", "answer(False)", "No", id="confirm.no", tooltip="Cancel, change nothing"),
    ]

    def __init__(self, title: str, body: str, *, confirm_label: str = "Yes"):
        super().__init__()
        self._title, self._body, self._confirm_label = title, body, confirm_label

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self._title, id="confirm-title")
            yield Static(self._body, id="confirm-body", markup=False)
            with Horizontal():
                yield Button("Cancel (n)", id="no")
                yield Button(f"{self._confirm_label} (y)", id="yes", variant="error")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()  # the safe choice is the default

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)
