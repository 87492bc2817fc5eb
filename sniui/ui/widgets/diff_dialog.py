"""The apply dialog: what the staged config changes, before it takes traffic.

HAProxy's runtime API shows a staged transaction before `commit`; this is the
same step. The dialog shows route additions, removals, changes and moves,
certificate/upstream entries, other sections, and — most important — the
`tests:` expectations whose decision changes, with the ones that would start
failing first and loudest.
"""

from __future__ import annotations

from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from sniui.ui.staged_diff import StagedDiff
from sniui.ui.widgets.tones import tone_styles


def diff_text(diff: StagedDiff, tones: dict[str, Style], warnings: list[str] | None = None) -> Text:
    text = Text()
    marks = {"added": ("+", "success"), "removed": ("-", "error"), "changed": ("~", "warning"), "moved": ("↕", "accent")}
    if diff.routes:
        text.append("Routes\n", style=Style(bold=True))
        for change in diff.routes:
            _, tone = marks[change.kind]
            text.append("  " + change.describe() + "\n", style=tones[tone])
    if diff.entries:
        text.append("Entries\n", style=Style(bold=True))
        for entry in diff.entries:
            text.append("  " + entry.describe() + "\n", style=tones[marks[entry.kind][1]])
    if diff.fallbacks:
        text.append("Fallbacks\n", style=Style(bold=True))
        for line in diff.fallbacks:
            text.append("  " + line + "\n", style=tones["warning"])
    others = [name for name in diff.sections if name not in ("default", "no_sni")]
    if others:
        text.append("Other sections changed: " + ", ".join(others) + "\n", style=Style(bold=True))
    if diff.tests:
        breaking = diff.breaking_tests
        title = f"Tests that change decision ({len(breaking)} would fail)\n" if breaking else "Tests that change decision\n"
        text.append(title, style=Style(bold=True))
        # Failures first: they are the reason to stop and think.
        for change in sorted(diff.tests, key=lambda c: not c.breaks):
            tone = "error" if change.breaks else ("success" if change.after.passed else "warning")
            text.append(("  ✗ " if not change.after.passed else "  ✓ ") + change.describe() + "\n", style=tones[tone])
    elif diff.routes or diff.fallbacks:
        text.append("No saved test changes decision.\n", style=tones["muted"])
    if warnings:
        text.append("Warnings (they do not block applying)\n", style=Style(bold=True))
        for warning in warnings:
            text.append("  ! " + warning + "\n", style=tones["warning"])
    if diff.empty:
        text.append("Nothing to apply: the staged config is the running one.", style=tones["muted"])
    text.rstrip()
    return text


class DiffDialog(ModalScreen[bool]):
    """Shows a StagedDiff; dismisses True to apply, False to keep editing."""

    DEFAULT_CSS = """
    DiffDialog { align: center middle; }
    DiffDialog > Vertical {
        width: 104; max-width: 100%; height: auto; max-height: 90%;
        border: thick $primary 60%; background: $surface; padding: 0 1;
    }
    DiffDialog #diff-title { text-style: bold; padding: 0 0 1 0; }
    DiffDialog.-breaking > Vertical { border: thick $error 70%; }
    DiffDialog VerticalScroll { height: auto; max-height: 30; }
    DiffDialog #diff-buttons { height: auto; align-horizontal: right; padding: 1 0 0 0; }
    DiffDialog #diff-buttons Button { margin-left: 2; }
    """
    BINDINGS = [
        Binding("y", "answer(True)", "Apply", id="diff.apply", tooltip="Swap the staged config into the running engine"),
        Binding("n,escape", "answer(False)", "Back", id="diff.cancel", tooltip="Keep editing; nothing changes"),
    ]

    def __init__(self, diff: StagedDiff, *, title: str = "Apply the staged config?", action_label: str = "Apply",
                 warnings: list[str] | None = None):
        super().__init__()
        self.diff = diff
        self.warnings = warnings or []
        self._title = title
        self._action_label = action_label

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self._title, id="diff-title")
            with VerticalScroll():
                yield Static(diff_text(self.diff, tone_styles(self.app), self.warnings), id="diff-body")
            with Horizontal(id="diff-buttons"):
                yield Button("Back (n)", id="diff-no")
                yield Button(f"{self._action_label} (y)", id="diff-yes",
                             variant="error" if self.diff.breaking_tests else "primary")

    def on_mount(self) -> None:
        self.set_class(bool(self.diff.breaking_tests), "-breaking")
        # With breaking tests the safe choice has the focus; otherwise applying is one key away.
        self.query_one("#diff-no" if self.diff.breaking_tests else "#diff-yes", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "diff-yes")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)


class SaveAsDialog(ModalScreen[str | None]):
    """Ask where to write a config that has no file yet (the built-in demo)."""

    DEFAULT_CSS = """
    SaveAsDialog { align: center middle; }
    SaveAsDialog > Vertical {
        width: 80; max-width: 100%; height: auto; border: thick $primary 60%; background: $surface; padding: 0 1;
    }
    SaveAsDialog #save-title { text-style: bold; padding: 0 0 1 0; }
    SaveAsDialog #save-note { color: $text-muted; padding: 1 0 0 0; }
    SaveAsDialog #save-buttons { height: auto; align-horizontal: right; padding: 1 0 0 0; }
    SaveAsDialog #save-buttons Button { margin-left: 2; }
    """
    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="save_as.cancel", tooltip="Do not save"),
    ]

    def __init__(self, suggestion: str = "sniui.yaml"):
        super().__init__()
        self._suggestion = suggestion

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Save the staged config as", id="save-title")
            yield Input(self._suggestion, id="save-path", tooltip="A file path; an existing file is kept as .bak")
            yield Static("Relative to the folder sniui was started in. Start sniui with -c FILE to run from it.",
                         id="save-note")
            with Horizontal(id="save-buttons"):
                yield Button("Cancel (esc)", id="save-cancel")
                yield Button("Save (enter)", id="save-ok", variant="primary")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._done()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "save-ok":
            self._done()
        else:
            self.dismiss(None)

    def _done(self) -> None:
        path = self.query_one("#save-path", Input).value.strip()
        self.dismiss(path or None)

    def action_cancel(self) -> None:
        self.dismiss(None)
