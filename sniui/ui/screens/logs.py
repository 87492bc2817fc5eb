"""The logs screen: the engine's event stream, filterable by level, route and SNI, pausable.

The app's worker keeps a bounded history of events as they arrive; this
screen appends what is new at each refresh tick (many events → one write),
and rewrites the view from the history when the filter changes.
"""

from __future__ import annotations

import fnmatch
import time
from dataclasses import dataclass

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, RichLog, Static

from sniui.engine.model import EngineSnapshot, Event
from sniui.ui.view import EngineView
from sniui.ui.widgets.filter import FilterBar
from sniui.ui.widgets.tones import tone_styles

LEVELS = ("debug", "info", "warning", "error")
_TONE = {"debug": "muted", "info": "", "warning": "warning", "error": "error"}


@dataclass(frozen=True, slots=True)
class EventFilter:
    """`route:NAME sni:GLOB level:LEVEL words…`; a leading `!` inverts the whole filter."""

    route: str | None = None
    sni: str | None = None
    words: tuple[str, ...] = ()
    invert: bool = False

    def matches(self, event: Event) -> bool:
        hit = True
        if self.route is not None:
            hit = (event.route or "").lower() == self.route
        if hit and self.sni is not None:
            name = (event.sni or "").lower()
            hit = fnmatch.fnmatchcase(name, self.sni) if any(c in self.sni for c in "*?[") else self.sni in name
        if hit and self.words:
            text = f"{event.kind} {event.message}".lower()
            hit = all(word in text for word in self.words)
        return hit != self.invert


def parse_event_filter(text: str) -> tuple[EventFilter | None, str | None]:
    """The filter, and a `level:` minimum if one was typed."""
    text = text.strip()
    invert = text.startswith("!")
    if invert:
        text = text[1:]
    route = sni = level = None
    words = []
    for token in text.lower().split():
        key, sep, value = token.partition(":")
        if sep and key == "route" and value:
            route = value
        elif sep and key == "sni" and value:
            sni = value
        elif sep and key == "level" and value in LEVELS:
            level = value
        else:
            words.append(token)
    if route is None and sni is None and not words:
        return None, level
    return EventFilter(route, sni, tuple(words), invert), level


def format_event(event: Event, styles: dict) -> Text:
    stamp = time.strftime("%H:%M:%S", time.localtime(event.at))
    line = Text()
    line.append(stamp + " ", style=styles.get("muted"))
    line.append(f"{event.level.upper():<7} ", style=styles.get(_TONE[event.level]) or "")
    line.append(f"{event.kind:<17} ", style=styles.get("accent"))
    line.append(event.message, style=styles.get(_TONE[event.level]) if event.level in ("warning", "error") else "")
    return line


class LogsScreen(Screen):
    CSS_PATH = "logs.tcss"
    BINDINGS = [
        Binding("slash", "filter", "Filter", id="logs.filter",
                tooltip="Filter: words, route:NAME, sni:GLOB, level:warning; ! inverts; esc clears"),
        Binding("l", "cycle_level", "Level", id="logs.level", tooltip="Minimum level: debug → info → warning → error"),
        Binding("p", "toggle_follow", "Pause", id="logs.pause", tooltip="Stop appending; events are kept meanwhile"),
        Binding("escape", "clear_filter", "Clear", id="logs.clear", show=False, tooltip="Clear the filter"),
    ]

    def __init__(self, view: EngineView, **kwargs):
        super().__init__(**kwargs)
        self.view = view
        self.min_level = "info"
        self.event_filter: EventFilter | None = None
        self.following = True
        self._shown_seq = 0      # app.events_seen when we last appended
        self._written = 0
        self._styles: dict = {}

    def compose(self) -> ComposeResult:
        yield Static(id="logs-status")
        yield FilterBar("filter: words, route:NAME, sni:GLOB, level:warning; !… inverts; esc clears", id="logs-filter")
        # Wrapped: a reject's reason is at the end of its line, where a cut would hide it.
        yield RichLog(id="log", max_lines=5000, wrap=True, markup=False, highlight=False, auto_scroll=True)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self._styles = tone_styles(self.app)
        self.watch(self.app, "theme", self._theme_changed, init=False)
        self.watch(self.app, "unapplied", self._show_status, init=False)
        self.query_one(RichLog).focus()
        self.call_after_refresh(self.rewrite)  # once the log knows its width

    def _theme_changed(self) -> None:
        self._styles = tone_styles(self.app)
        self.rewrite()

    def on_resize(self) -> None:
        if self.is_mounted:
            self.call_after_refresh(self.rewrite)

    def on_screen_resume(self) -> None:
        if self.is_mounted:
            self.show_snapshot(None)

    # -- events → lines -----------------------------------------------------------

    def _wanted(self, event: Event) -> bool:
        if LEVELS.index(event.level) < LEVELS.index(self.min_level):
            return False
        return self.event_filter is None or self.event_filter.matches(event)

    def rewrite(self) -> None:
        """Filter changed: redraw from the kept history."""
        log = self.query_one(RichLog)
        log.clear()
        self._written = 0
        history = list(self.app.events)  # type: ignore[attr-defined]
        for event in history:
            if self._wanted(event):
                self._write(log, event)
        self._shown_seq = self.app.events_seen  # type: ignore[attr-defined]
        self._show_status()

    def show_snapshot(self, snapshot: EngineSnapshot | None) -> None:
        """Called by the app's refresh loop: append what arrived since the last tick."""
        app = self.app
        if self.following:
            fresh = app.events_seen - self._shown_seq  # type: ignore[attr-defined]
            if fresh > 0:
                history = app.events  # type: ignore[attr-defined]
                new = list(history)[-min(fresh, len(history)):]
                log = self.query_one(RichLog)
                for event in new:
                    if self._wanted(event):
                        self._write(log, event)
                self._shown_seq = app.events_seen  # type: ignore[attr-defined]
        self._show_status()

    def _write(self, log: RichLog, event: Event) -> None:
        # Wrap to the log's own width: left to itself RichLog measures against the console, which is
        # not the terminal's width in every driver. On resize the lines are rewritten (see on_resize).
        width = log.scrollable_content_region.width
        log.write(format_event(event, self._styles), width=width if width > 0 else None)
        self._written += 1

    def _show_status(self) -> None:
        app = self.app
        text = Text()
        text.append(f"level ≥ {self.min_level}", style="bold")
        if self.event_filter is not None:
            text.append(f" · filter {self.query_one(FilterBar).value!r}")
        text.append(f" · {self._written} shown of {len(app.events)} kept")  # type: ignore[attr-defined]
        dropped = getattr(app, "events_dropped", 0)
        if dropped:
            text.append(f" · {dropped} dropped by a full queue", style=self._styles.get("warning"))
        if getattr(app, "unapplied", False):
            text.append("  ● unapplied changes", style=self._styles.get("warning"))
        if not self.following:
            waiting = app.events_seen - self._shown_seq  # type: ignore[attr-defined]
            text.append(f"  PAUSED, {waiting} new (p resumes)", style="bold reverse")
        self.query_one("#logs-status", Static).update(text)

    # -- actions ---------------------------------------------------------------------

    @on(FilterBar.Updated)
    def _filter_changed(self, event: FilterBar.Updated) -> None:
        self.event_filter, level = parse_event_filter(event.text)
        if level is not None:
            self.min_level = level
        self.rewrite()

    @on(FilterBar.Done)
    def _filter_done(self) -> None:
        self.query_one(RichLog).focus()

    def action_filter(self) -> None:
        self.query_one(FilterBar).open()

    def action_clear_filter(self) -> None:
        self.query_one(FilterBar).action_clear()

    def action_cycle_level(self) -> None:
        self.min_level = LEVELS[(LEVELS.index(self.min_level) + 1) % len(LEVELS)]
        self.rewrite()

    def action_toggle_follow(self) -> None:
        self.following = not self.following
        self.show_snapshot(None)
