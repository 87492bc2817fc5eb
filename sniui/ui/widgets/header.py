"""The dashboard's header strip: what is listening, how busy, how many errors, which config."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Sparkline

from sniui.engine.model import EngineSnapshot
from sniui.ui.format import human_age, human_bytes, human_count
from sniui.ui.widgets.line import Line

# Rates are one sample a second; the sparklines cover the last five minutes.
SPARK_SECONDS = 300


def short_reason(reason: str) -> str:
    return reason.removeprefix("rejected: ")


class HeaderStrip(Vertical):
    DEFAULT_CSS = """
    HeaderStrip { height: 3; padding: 0 1; background: $boost; }
    HeaderStrip Horizontal { height: 1; }
    HeaderStrip Line { width: auto; }
    HeaderStrip Sparkline { width: 1fr; height: 1; margin: 0 1; }
    HeaderStrip #hs-listeners { width: 1fr; }
    HeaderStrip #hs-config.-unapplied { color: $text-warning; text-style: bold; }
    HeaderStrip #hs-errors { width: 1fr; color: $text-muted; }
    HeaderStrip #hs-errors.-error { color: $text-error; }
    HeaderStrip .-label { color: $text-muted; }
    """

    def compose(self) -> ComposeResult:
        with Horizontal():
            yield Line(id="hs-listeners")
            yield Line(id="hs-config")
        with Horizontal():
            yield Line(id="hs-active")
            yield Line(id="hs-conn-rate")
            yield Sparkline([], id="hs-conn-spark")
            yield Line(id="hs-byte-rate")
            yield Sparkline([], id="hs-bytes-spark")
        yield Line(id="hs-errors")

    def show(self, snapshot: EngineSnapshot, *, now: float, config_path: str | None, unapplied: bool,
             read_only: bool) -> None:
        listeners = " ".join(" ".join(info.bound) or info.address for info in snapshot.listeners) or "no listeners"
        line = Text()
        line.append("● " if snapshot.listeners else "○ ", style="bold")
        line.append(listeners)
        line.append("  up ", style="dim")
        line.append(human_age(now - snapshot.started_at))
        self.query_one("#hs-listeners", Line).show(line)

        config = Text()
        if read_only:
            config.append("read-only  ", style="dim")
        config.append(config_path or "built-in demo")
        config.append(f" gen {snapshot.config_generation}", style="dim")
        if unapplied:
            config.append("  ● unapplied changes")
        config_widget = self.query_one("#hs-config", Line)
        config_widget.show(config)
        config_widget.set_class(unapplied, "-unapplied")

        recent = snapshot.rates[-SPARK_SECONDS:]
        last = recent[-1] if recent else None
        self.query_one("#hs-active", Line).show(Text.assemble(
            ("active ", "dim"), (human_count(snapshot.totals.active), "bold"), ("  total ", "dim"),
            human_count(snapshot.totals.accepted)))
        self.query_one("#hs-conn-rate", Line).show(Text.assemble(
            ("  conn/s ", "dim"), (str(last.connections if last else 0), "bold")))
        self.query_one("#hs-byte-rate", Line).show(Text.assemble(
            ("bytes/s ", "dim"), (human_bytes(last.bytes if last else 0), "bold")))
        # Pad to the full window so the x axis is always five minutes, even just after start.
        pad = [0] * (SPARK_SECONDS - len(recent))
        self.query_one("#hs-conn-spark", Sparkline).data = pad + [s.connections for s in recent]
        self.query_one("#hs-bytes-spark", Sparkline).data = pad + [s.bytes for s in recent]

        errors = snapshot.totals.errors
        total = sum(errors.values())
        text = Text()
        text.append("errors ", style="dim")
        text.append(human_count(total), style="bold")
        recent_errors = sum(s.errors for s in snapshot.rates[-60:])
        text.append(f" ({recent_errors} last min)  ", style="dim")
        for reason, count in sorted(errors.items(), key=lambda kv: -kv[1]):
            text.append(f"{short_reason(reason)} ")
            text.append(human_count(count), style="bold")
            text.append(" · ", style="dim")
        if errors:
            text.right_crop(3)
        widget = self.query_one("#hs-errors", Line)
        widget.show(text)
        widget.set_class(recent_errors > 0, "-error")
