"""The small tables under the dashboard: recently closed connections, and upstream server health.

They hold tens of rows, so they are rewritten in place cell by cell like the
main table but without its grouping and capping.
"""

from __future__ import annotations

from rich.text import Text

from sniui.engine.model import ConnectionInfo, ServerHealth
from sniui.ui.widgets.fast_cells import FastCells
from sniui.ui.format import clip, human_age, human_bytes, human_duration
from sniui.ui.widgets.tones import tone_styles


class KeyedTable(FastCells):
    """A DataTable written as {row key: cells}; only changed cells are touched."""

    COLUMNS: tuple[tuple[str, str, int | None], ...] = ()

    def __init__(self, **kwargs):
        super().__init__(cursor_type="row", **kwargs)
        self._cells: dict[str, tuple] = {}
        self.styles_by_tone = {}

    def on_mount(self) -> None:
        for key, label, width in self.COLUMNS:
            self.add_column(label, key=key, width=width)
        self.styles_by_tone = tone_styles(self.app)
        self.watch(self.app, "theme", self._theme_changed, init=False)

    def _theme_changed(self) -> None:
        self.styles_by_tone = tone_styles(self.app)
        self._cells.clear()
        self.clear()

    def write(self, rows: list[tuple[str, str, tuple[str, ...]]]) -> None:
        """rows: (key, tone, cells). Order is taken as given; these tables are short."""
        wanted = [key for key, _, _ in rows]
        keep = None
        if wanted != list(self._cells):
            # New rows arrive at the top; these tables are short, so rebuild and put the cursor back on its row.
            if self.row_count:
                keep = self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
            self.clear()
            self._cells.clear()
        for key, tone, cells in rows:
            style = self.styles_by_tone.get(tone)
            old = self._cells.get(key)
            if old is None:
                self.add_row(*(Text(c, style=style) for c in cells), key=key)
            elif old != (tone, cells):
                for (column, _, _), before, after in zip(self.COLUMNS, old[1], cells):
                    self.update_cell(key, column, Text(after, style=style), update_width=False)
            self._cells[key] = (tone, cells)
        if keep is not None and keep in self._cells:
            self.move_cursor(row=wanted.index(keep), animate=False)


class RecentTable(KeyedTable):
    COLUMNS = (
        ("ago", "Closed", 7), ("sni", "SNI", 28), ("reason", "Reason", 24), ("upstream", "Upstream", 22),
        ("bytes", "Bytes ↑/↓", 13), ("duration", "Lasted", 7), ("client", "Client", 21),
    )

    def show(self, recent: tuple[ConnectionInfo, ...], now: float) -> None:
        rows = []
        for conn in recent:
            reason = conn.close_reason
            tone = "error" if reason is not None and reason.is_error else "muted"
            rows.append((f"r:{conn.id}", tone, (
                human_age(now - (conn.closed or now)),
                clip(conn.sni or "(no SNI)", 28),
                clip(reason.value if reason else "-", 24),
                clip(conn.upstream_address or conn.upstream or "-", 22),
                f"{human_bytes(conn.bytes_up)}/{human_bytes(conn.bytes_down)}",
                human_duration(conn.duration or 0),
                clip(conn.client, 21),
            )))
        self.write(rows)


class ServersTable(KeyedTable):
    COLUMNS = (
        ("health", "Health", 8), ("group", "Group", 10), ("address", "Server", 24), ("active", "Active", 6),
        ("total", "Total", 8), ("fails", "Fails", 5), ("error", "Last error", None),
    )

    def show(self, servers: tuple[ServerHealth, ...], now: float) -> None:
        rows = []
        for server in servers:
            if server.up:
                health, tone = "up", ("warning" if server.fails else "success")
            else:
                left = f" {human_age(server.down_until - now)}" if server.down_until and server.down_until > now else ""
                health, tone = "DOWN" + left, "error"
            rows.append((f"s:{server.group}:{server.address}", tone, (
                health, server.group or "(direct)", clip(server.address, 24), str(server.active), str(server.total),
                str(server.fails), server.last_error or "",
            )))
        self.write(rows)
