"""The connection detail panel: ClientHello facts (and, when terminating, what the handshake agreed),
the routing explanation, timings, bytes, close reason."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static

from sniui.engine.model import ConnectionInfo
from sniui.ui.format import human_age, human_bytes, human_ms, human_rate, tls_versions
from sniui.ui.rows import upstream_text


class DetailPanel(VerticalScroll):
    DEFAULT_CSS = """
    DetailPanel { display: none; border-left: tall $primary 50%; padding: 0 1; }
    DetailPanel.-open { display: block; }
    DetailPanel > Static { width: 100%; }
    """

    def compose(self):
        yield Static(id="detail-body")

    def show(self, conn: ConnectionInfo, *, now: float, rate: float, explanation: list[str], styles: dict,
             can_close: bool = True, labels: dict | None = None) -> None:
        self.border_title = f"connection #{conn.id}"
        facts = Table.grid(padding=(0, 1))
        facts.add_column(style="dim", no_wrap=True)
        facts.add_column(overflow="fold")
        state = Text(conn.state.value, style=styles.get("muted" if conn.closed else "success", ""))
        facts.add_row("state", state)  # colour: live green, closed muted
        facts.add_row("client", f"{conn.client}  (listener {conn.listener})")
        if conn.client_subject:
            facts.add_row("client cert", conn.client_subject)
        facts.add_row("SNI", conn.sni or "(none sent)")
        facts.add_row("ALPN", ", ".join(conn.alpn) or "-")
        facts.add_row("TLS", f"{tls_versions(conn.tls_versions)} · ECH {'yes' if conn.ech else 'no'} · "
                             f"{conn.cipher_count} ciphers")
        if conn.tls_version:   # terminating routes, once our handshake with the client completed
            facts.add_row("negotiated", f"{conn.tls_version} · {conn.tls_cipher or '-'} · "
                                        + (f"ALPN {conn.alpn_selected}" if conn.alpn_selected else "no ALPN"))
        facts.add_row("route", f"{conn.route or '-'} ({conn.mode})")
        facts.add_row("upstream", upstream_text(conn, labels or {}, full=True))
        facts.add_row("bytes", f"↑ {human_bytes(conn.bytes_up)}  ↓ {human_bytes(conn.bytes_down)}  "
                               f"{human_rate(rate)}")
        end = conn.closed if conn.closed is not None else now
        facts.add_row("timings", f"hello {human_ms(conn.hello_ms)} · connect {human_ms(conn.connect_ms)}")
        facts.add_row("age", f"{human_age(end - conn.started)}"
                             + ("" if conn.closed else f" · idle {human_age(now - conn.last_activity)}"))
        if conn.close_reason is not None:
            tone = "error" if conn.close_reason.is_error else "muted"
            reason = Text(conn.close_reason.value, style=styles.get(tone, ""))
            if conn.close_detail:
                reason.append(f" — {conn.close_detail}")
            facts.add_row("closed", reason)
            facts.add_row("", f"{human_age(now - conn.closed)} ago" if conn.closed else "")
        heading = Text("\nrouting (running config, as `sniui match`)", style="bold")
        # `sniui match` pads its columns for a wide terminal; a side panel reads better with them collapsed.
        compact = [("  " if line.startswith("  ") else "") + " ".join(p for p in line.split("  ") if p)
                   for line in explanation]
        lines = Text("\n".join(compact)) if compact else Text("-")
        title = Text(f"connection #{conn.id}", style="bold")
        hint = "  esc back · k closes the connection" if conn.closed is None and can_close else "  esc back"
        title.append(hint, style="dim")
        self.query_one("#detail-body", Static).update(Group(title, facts, heading, lines))

    def show_gone(self, connection_id: int) -> None:
        self.border_title = f"connection #{connection_id}"
        self.query_one("#detail-body", Static).update(
            Text("This connection closed and has left the recently-closed list.", style="dim"))
