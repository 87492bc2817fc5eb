"""A one-line text widget for values rewritten on every refresh tick.

`Static.update` asks the screen for a layout pass by default, and a layout
pass reflows and repaints the whole screen: with the header strip's counters
and the status line rewritten three times a second, that was the TUI's largest
cost under connection churn. A `Line` repaints only when its text changed, and
asks for layout only when it could change size: its width is `auto` and the
text's cell length changed.
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static


class Line(Static):
    DEFAULT_CSS = """
    Line { height: 1; text-wrap: nowrap; text-overflow: ellipsis; }
    """

    def __init__(self, text: Text | str = "", **kwargs) -> None:
        super().__init__(text, **kwargs)
        self._shown = Text(text) if isinstance(text, str) else text

    @property
    def shown(self) -> Text:
        return self._shown

    def show(self, text: Text | str) -> None:
        new = Text(text) if isinstance(text, str) else text
        old = self._shown
        if new == old and new.style == old.style:
            return
        width = self.styles.width
        auto_width = width is None or width.is_auto
        self._shown = new
        self.update(new, layout=auto_width and new.cell_len != old.cell_len)
