"""The Certificates screen: every staged certificate entry, what its files hold, who uses it, what is wrong.

Rows come from the staged config (the same working copy as the Routes screen),
checked by `sniui.tls.certificates` with the view's clock, so replayed
screens show fixed ages. Adding an entry and mapping it to a route are staged
edits; apply, save and revert are the shared staged flow.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from rich.style import Style
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import DataTable, Footer, Static

from sniui.config.models import CertificateEntry, format_loc
from sniui.tls.certificates import EXPIRY_WARNING, CertificateInfo, check_certificates, load_certificate_entry
from sniui.tls.findings import CertFinding
from sniui.ui.format import clip
from sniui.ui.screens.staged import StagedScreen
from sniui.ui.staging import StagedSession
from sniui.ui.widgets.certificate_form import CertificateForm, MapCertificateForm
from sniui.ui.widgets.confirm import ConfirmDialog
from sniui.ui.widgets.tones import tone_styles

CERT_COLUMNS = (
    ("name", "Name", 12),
    ("sans", "SANs", 28),
    ("not_after", "Not after", 10),
    ("days", "Days", 5),
    ("key", "Key", 9),
    ("key_ok", "Match", 5),
    ("chain", "Chain", 5),
    ("routes", "Routes", 16),
    ("findings", "Issues", 6),
)


@dataclass
class StagedCertificates:
    """The staged entries checked: loaded infos, every finding, and the routes using each entry."""

    infos: dict[str, CertificateInfo] = field(default_factory=dict)
    findings: list[CertFinding] = field(default_factory=list)
    routes: dict[str, list[str]] = field(default_factory=dict)

    def for_certificate(self, name: str) -> list[CertFinding]:
        return [f for f in self.findings if f.certificate == name]


def check_staged(session: StagedSession, now: datetime) -> StagedCertificates:
    """Run the certificates module over the working copy, even one that does not validate yet."""
    validation = session.validate()
    if validation.config is not None:
        report = check_certificates(validation.config, now)
        findings = list(report.findings)
        return StagedCertificates(dict(report.certificates), findings, {k: list(v) for k, v in report.routes.items()})
    # The working copy has errors elsewhere: still show each entry's own material.
    out = StagedCertificates()
    for name, entry in session.certificates.items():
        try:
            model = CertificateEntry(**entry)
        except Exception:
            continue
        info = load_certificate_entry(name, model, session.running.base_dir, now=now)
        out.infos[name] = info
        out.findings += info.findings
        out.routes[name] = []
    for label, route in zip(session.labels(), session.routes):
        if route.get("certificate") in out.routes:
            out.routes[route["certificate"]].append(label)
    # Config errors about certificates (an unknown name on a route) belong in the list too.
    for issue in validation.errors:
        if any(part in ("certificate", "certificates") for part in issue.loc if isinstance(part, str)):
            route = None
            if len(issue.loc) > 1 and issue.loc[0] == "routes" and isinstance(issue.loc[1], int):
                labels = session.labels()
                route = labels[issue.loc[1]] if issue.loc[1] < len(labels) else None
            fix = (f"give route {route} an existing certificate (m), or add the entry (a)" if route
                   else f"correct {format_loc(issue.loc)}")
            out.findings.append(CertFinding("error", None, route, None, issue.loc, issue.message, fix))
    return out


class CertificatesScreen(StagedScreen):
    CSS_PATH = "certificates.tcss"
    BINDINGS = [
        Binding("a", "add_certificate", "Add cert", id="certificates.add",
                tooltip="Add a certificate entry by its file paths (checked as you type)"),
        Binding("e", "edit_certificate", "Edit", id="certificates.edit", tooltip="Change the selected entry's files or name"),
        Binding("d", "remove_certificate", "Remove", id="certificates.remove", tooltip="Remove the selected entry (asks first)"),
        Binding("m", "map_certificate", "Map to route", id="certificates.map",
                tooltip="Serve the selected certificate on a route (mode: terminate)"),
        Binding("A", "apply", "Apply", id="certificates.apply", tooltip="Show the diff, then swap the staged config into the engine"),
        Binding("ctrl+s", "save", "Save", id="certificates.save", tooltip="Write the staged config to its file (atomic; keeps .bak)"),
        Binding("R", "revert", "Revert", id="certificates.revert", tooltip="Drop staged edits and return to the running config"),
    ]
    MUTATING = StagedScreen.MUTATING | {"add_certificate", "edit_certificate", "remove_certificate", "map_certificate"}

    def __init__(self, view=None, session=None, **kwargs):
        super().__init__(view, session, **kwargs)
        self.report = StagedCertificates()
        self.names: list[str] = []

    def compose(self) -> ComposeResult:
        yield Static(id="staged-status")
        table = DataTable(id="certs-table", cursor_type="row", zebra_stripes=True)
        table.border_title = "Certificates (staged)"
        yield table
        with Horizontal(id="certs-lower"):
            with VerticalScroll(id="cert-detail-box") as detail:
                detail.border_title = "Selected certificate"
                yield Static(id="cert-detail")
            with VerticalScroll(id="findings-box") as findings:
                findings.border_title = "Findings"
                yield Static(id="findings")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#certs-table", DataTable)
        for key, header, width in CERT_COLUMNS:
            table.add_column(header, key=key, width=width)
        self.staged_ready()
        table.focus()

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.view.now(), timezone.utc)

    @property
    def selected(self) -> str | None:
        table = self.query_one("#certs-table", DataTable)
        if not self.names or not (0 <= table.cursor_row < len(self.names)):
            return None
        return self.names[table.cursor_row]

    # -- drawing ---------------------------------------------------------------------

    def staged_changed(self) -> None:
        keep = self.selected
        self.report = check_staged(self.session, self.now())
        self.names = list(self.session.certificates)
        tones = tone_styles(self.app)
        table = self.query_one("#certs-table", DataTable)
        with self.app.batch_update():
            table.clear()
            for name in self.names:
                info = self.report.infos.get(name)
                table.add_row(*self._cells(name, info, tones), key=name)
            if keep in self.names:
                table.move_cursor(row=self.names.index(keep))
            self._draw_findings(tones)
            self._draw_detail()
        table.border_title = f"Certificates (staged): {len(self.names)}" if self.names else \
            "Certificates (staged): none — a to add one by its file paths"

    def _cells(self, name: str, info: CertificateInfo | None, tones: dict[str, Style]) -> list[Text]:
        own = self.report.for_certificate(name)
        errors = sum(f.severity == "error" for f in own)
        warnings = len(own) - errors
        name_tone = tones["error"] if errors else (tones["warning"] if warnings else "")
        routes = self.report.routes.get(name, [])
        if info is None or not info.loaded:
            return [Text(clip(name, 12), style=name_tone), Text("(files did not load)", style=tones["error"]),
                    Text(""), Text(""), Text(info.key_type or "" if info else ""), Text(""), Text(""),
                    Text(clip(", ".join(routes) or "-", 16)), self._issue_count(errors, warnings, tones)]
        days = info.days_left
        days_tone = tones["error"] if days is not None and days < 0 else (
            tones["warning"] if days is not None and days < EXPIRY_WARNING.days else tones["success"])
        key = (info.key_type or "?") + (f" {info.key_bits}" if info.key_bits and info.key_type == "RSA" else "")
        return [
            Text(clip(name, 12), style=name_tone),
            Text(clip(", ".join(info.sans) or "(no DNS SANs)", 28)),
            Text(f"{info.not_after:%Y-%m-%d}" if info.not_after else ""),
            Text(str(days) if days is not None else "", style=days_tone, justify="right"),
            Text(clip(key, 9)),
            _mark(info.key_matches, tones),
            _mark(info.chain_ok, tones),
            Text(clip(", ".join(routes) or "-", 16), style="" if routes else tones["muted"]),
            self._issue_count(errors, warnings, tones),
        ]

    @staticmethod
    def _issue_count(errors: int, warnings: int, tones: dict[str, Style]) -> Text:
        if errors:
            return Text(f"✗ {errors}", style=tones["error"])
        if warnings:
            return Text(f"! {warnings}", style=tones["warning"])
        return Text("✓", style=tones["success"])

    def _draw_findings(self, tones: dict[str, Style]) -> None:
        findings = sorted(self.report.findings, key=lambda f: (f.severity != "error", f.certificate or "", f.route or ""))
        box = self.query_one("#findings-box")
        errors = sum(f.severity == "error" for f in findings)
        box.border_title = f"Findings: {errors} error(s), {len(findings) - errors} warning(s)" if findings else "Findings: none"
        box.set_class(errors > 0, "-errors")
        base = self.session.running.base_dir
        # One grid row per finding: the mark in its own column keeps wrapped messages indented under it.
        grid = Table.grid(padding=(0, 1))
        grid.add_column(no_wrap=True)
        grid.add_column(overflow="fold")
        for finding in findings:
            tone = tones["error"] if finding.severity == "error" else tones["warning"]
            where = " · ".join(p for p in (finding.certificate, finding.route and f"route {finding.route}") if p)
            body = Text()
            body.append(finding.severity, style=tone + Style(bold=True))
            body.append(f"  {where}\n" if where else "\n", style=Style(bold=True))
            body.append(_relative(finding.message, base))
            if finding.fix:
                body.append(f"\nfix: {_relative(finding.fix, base)}", style=tones["muted"])
            grid.add_row(Text("✗" if finding.severity == "error" else "!", style=tone + Style(bold=True)), body)
        if not findings and not self.names:
            grid.add_row("", Text("No certificates: routes pass TLS through. Add one (a) to terminate TLS on a route (m).",
                                  style=tones["muted"]))
        elif not findings:
            grid.add_row("", Text("No findings: every certificate loads, matches its key, covers its routes and is in date.",
                                  style=tones["success"]))
        self.query_one("#findings", Static).update(grid)

    def _draw_detail(self) -> None:
        name = self.selected
        detail = self.query_one("#cert-detail", Static)
        if name is None:
            detail.update(Text("No certificate selected.", style="dim"))
            return
        entry = self.session.certificates.get(name, {})
        info = self.report.infos.get(name)
        rows: list[tuple[str, str]] = [("name", name), ("cert", entry.get("cert", "")), ("key", entry.get("key", ""))]
        if info is not None and info.loaded:
            days = info.days_left if info.days_left is not None else 0
            span = f"{info.not_before:%Y-%m-%d} → {info.not_after:%Y-%m-%d}"
            match = {True: "matches the certificate", False: "DOES NOT MATCH", None: "not checked"}[info.key_matches]
            bits = f" {info.key_bits} bits" if info.key_bits and info.key_type == "RSA" else ""
            rows += [
                ("subject", info.subject or ""),
                ("issuer", info.issuer or ""),
                ("SANs", ", ".join(info.sans) or "(none)"),
                ("valid", f"{span} ({_days(days)} left)" if days >= 0 else f"{span} (EXPIRED {_days(-days)} ago)"),
                ("key", f"{info.key_type or '?'}{bits} — {match}"),
                ("chain", ("ok: " if info.chain_ok else "NOT ok: ") + " → ".join(info.chain)),
                ("signature", info.signature_hash or "-"),
            ]
        routes = self.report.routes.get(name, [])
        rows.append(("routes", ", ".join(routes) if routes else "(none: m maps it to a route)"))
        # A grid keeps wrapped values (long paths, subjects) under their own column.
        grid = Table.grid(padding=(0, 1))
        grid.add_column(style=tone_styles(self.app)["muted"], no_wrap=True)
        grid.add_column(overflow="fold")
        for label, value in rows:
            grid.add_row(label, value)
        detail.update(grid)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id == "certs-table":
            self._draw_detail()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table.id == "certs-table":
            event.stop()
            if not self.view.read_only:
                self.action_edit_certificate()

    # -- editing ---------------------------------------------------------------------

    def _inspect(self, name: str, entry: dict[str, str]) -> CertificateInfo | None:
        try:
            model = CertificateEntry(**entry)
        except Exception:
            return None
        base = self.session.running.base_dir
        info = load_certificate_entry(name or "new", model, base, now=self.now())
        # Name files the way the config does (relative to its folder): shorter, and what the user typed.
        return dataclasses.replace(info, findings=tuple(
            dataclasses.replace(f, message=_relative(f.message, base), fix=_relative(f.fix, base)) for f in info.findings))

    def action_add_certificate(self) -> None:
        def done(result: tuple[str, dict[str, str]] | None) -> None:
            if result is None:
                return
            name, entry = result
            self.session.set_certificate(name, entry)
            self.sync_staged()
            self.query_one("#certs-table", DataTable).move_cursor(row=self.names.index(name))
            self._draw_detail()
            self.notify(f"Certificate {name} staged; m maps it to a route, A applies.", title="Add certificate")

        self.app.push_screen(CertificateForm("Add a certificate entry", self.session.check_certificate, self._inspect), done)

    def action_edit_certificate(self) -> None:
        old = self.selected
        if old is None:
            self.notify("No certificate selected: a adds one.", severity="warning")
            return

        def done(result: tuple[str, dict[str, str]] | None) -> None:
            if result is None:
                return
            name, entry = result
            self.session.set_certificate(name, entry, old_name=old)
            self.sync_staged()

        self.app.push_screen(CertificateForm(
            f"Edit certificate entry {old}",
            lambda name, entry: self.session.check_certificate(name, entry, old_name=old),
            self._inspect, old, self.session.certificates.get(old)), done)

    def action_remove_certificate(self) -> None:
        name = self.selected
        if name is None:
            return
        users = self.report.routes.get(name, [])

        def answered(confirmed: bool | None) -> None:
            if confirmed:
                self.session.remove_certificate(name)
                self.sync_staged()

        warning = (f"Routes {', '.join(users)} still use it: the staged config will not validate until they get another "
                   "certificate or go back to passthrough." if users else "No route uses it.")
        self.app.push_screen(ConfirmDialog(f"Remove certificate {name}?", warning, confirm_label="Remove"), answered)

    def action_map_certificate(self) -> None:
        routes = list(enumerate(self.session.labels()))
        if not routes:
            self.notify("There are no routes yet: add one on the Routes screen.", severity="warning")
            return
        selected = self.selected
        # Start on a route that already uses the selected certificate, else the first one.
        start = next((i for i, label in routes if label in self.report.routes.get(selected or "", [])), routes[0][0])
        choices = [(i, f"{label}  ({', '.join(self.session.route(i).get('sni') or [])})") for i, label in routes]

        def done(result: tuple[int, str | None] | None) -> None:
            if result is None:
                return
            index, certificate = result
            self.session.map_certificate(index, certificate)
            self.sync_staged()
            label = self.session.labels()[index]
            what = f"serves {certificate} (mode: terminate)" if certificate else "passes TLS through"
            self.notify(f"Route {label} now {what} in the staged config; A applies.", title="Map certificate")

        self.app.push_screen(MapCertificateForm(choices, list(self.session.certificates), route=start,
                                                certificate=selected), done)


def _days(count: int) -> str:
    return f"{count} day" if count == 1 else f"{count} days"


def _mark(value: bool | None, tones: dict[str, Style]) -> Text:
    if value is None:
        return Text("-", style=tones["muted"])
    return Text("✓" if value else "✗", style=tones["success"] if value else tones["error"])


def _relative(text: str, base: Path) -> str:
    """File names relative to the config's folder: shorter, and the way the config names them."""
    return text.replace(f"{base}{os.sep}", "")
