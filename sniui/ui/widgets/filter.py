"""The `/` filter box (k9s/hatop style): live as you type, `!` inverts, esc clears."""

from __future__ import annotations

from textual import on
from textual.binding import Binding
from textual.message import Message
from textual.widgets import Input


class FilterBar(Input):
    DEFAULT_CSS = """
    FilterBar { dock: top; height: 1; border: none; padding: 0 1; display: none; background: $boost; }
    FilterBar.-active { display: block; }
    FilterBar:focus { border: none; background: $primary 20%; }
    """
    BINDINGS = [
        Binding("escape", "clear", "Clear filter", id="filter.clear", tooltip="Clear the filter and close the box"),
    ]

    class Updated(Message):
        def __init__(self, text: str):
            super().__init__()
            self.text = text

    class Done(Message):
        """Enter: keep the filter and return to the table."""

    def __init__(self, placeholder: str, **kwargs):
        super().__init__(placeholder=placeholder, **kwargs)

    def open(self) -> None:
        self.add_class("-active")
        self.focus()

    @on(Input.Changed)
    def _changed(self, event: Input.Changed) -> None:
        event.stop()
        self.post_message(self.Updated(event.value))

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if not self.value:
            self.remove_class("-active")
        self.post_message(self.Done())

    def action_clear(self) -> None:
        self.value = ""
        self.remove_class("-active")
        self.post_message(self.Updated(""))
        self.post_message(self.Done())
