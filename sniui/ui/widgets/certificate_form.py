"""Dialogs of the Certificates screen: add/edit an entry by file paths, map a certificate to a route.

The entry form validates as you type on two levels: the config models (name,
required fields: `check`, the staging session's `check_certificate`) and the
material itself (`inspect`, which loads the files with the certificates module
and returns a CertificateInfo with its findings). File problems are marked at
the `cert` or `key` field with the same message `sniui certs` prints.
"""

from __future__ import annotations

from typing import Callable

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static

from sniui.tls.certificates import CertificateInfo
from sniui.ui.staging import FieldCheck
from sniui.ui.widgets.form_check import CheckedForm

CertificateEntryData = dict[str, str]
_FIELDS = (
    ("name", "name", "e.g. example — routes refer to it by this name", "The name routes use in `certificate:`"),
    ("cert", "cert", "certs/example.pem — leaf first, then the chain", "PEM certificate file; relative to the config file's folder"),
    ("key", "key", "certs/example.key", "PEM private key file for the leaf certificate"),
)


def info_summary(info: CertificateInfo) -> str:
    """One or two lines describing what the files hold."""
    if not info.loaded:
        return ""
    key = f"{info.key_type or '?'}" + (f" {info.key_bits}" if info.key_bits else "")
    days = info.days_left
    expiry = (f"expired {-days} day(s) ago" if days is not None and days < 0 else f"{days} day(s) left") if days is not None else ""
    match = {True: "key matches", False: "KEY DOES NOT MATCH", None: "key not checked"}[info.key_matches]
    sans = ", ".join(info.sans[:4]) + (f" +{len(info.sans) - 4}" if len(info.sans) > 4 else "")
    return f"{info.subject} · SANs: {sans or 'none'}\n{expiry} · {key} · {match} · chain {'ok' if info.chain_ok else 'NOT ok'}"


class CertificateForm(CheckedForm[tuple[str, CertificateEntryData] | None]):
    """Add or edit a `certificates:` entry; dismisses with (name, {cert, key}) or None."""

    DEFAULT_CSS = """
    CertificateForm { align: center middle; }
    CertificateForm > Vertical {
        width: 96; max-width: 100%; height: auto; max-height: 100%;
        border: thick $primary 60%; background: $surface; padding: 0 1;
    }
    CertificateForm #cert-form-title { text-style: bold; padding: 0 0 1 0; }
    CertificateForm .form-row { height: auto; }
    CertificateForm .form-row Label { width: 8; padding: 0 1 0 0; text-align: right; }
    CertificateForm .form-row Input { width: 1fr; }
    CertificateForm .form-row Input.-invalid { border: tall $error; }
    CertificateForm .field-error { color: $text-error; padding: 0 0 0 8; height: auto; display: none; }
    CertificateForm .field-error.-shown { display: block; }
    CertificateForm .field-error.-warning { color: $text-warning; }
    CertificateForm #cert-form-info { padding: 1 0 0 8; height: auto; color: $text-muted; }
    CertificateForm #cert-form-buttons { height: auto; align-horizontal: right; padding: 1 0 0 0; }
    CertificateForm #cert-form-buttons Button { margin-left: 2; }
    """
    OK_BUTTON = "cert-form-ok"
    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="certificate_form.cancel", tooltip="Close, change nothing"),
        Binding("ctrl+s", "submit", "Stage", id="certificate_form.submit", tooltip="Put this entry into the staged config"),
    ]

    def __init__(
        self,
        title: str,
        check: Callable[[str, CertificateEntryData], FieldCheck],
        inspect: Callable[[str, CertificateEntryData], CertificateInfo | None],
        name: str = "",
        entry: CertificateEntryData | None = None,
    ):
        super().__init__()
        self._title = title
        self._check = check
        self._inspect = inspect
        self._initial = {"name": name, **(entry or {})}
        self.last_check: FieldCheck = FieldCheck()
        self.last_info: CertificateInfo | None = None
        self.ok = False
        # As in the route editor: messages for a field once it has been touched, all after a submit attempt.
        self._touched: set[str] = {f for f, v in self._initial.items() if v}

    def is_valid(self, result: tuple[FieldCheck, CertificateInfo | None]) -> bool:
        return result[0].ok

    def result_value(self) -> tuple[str, CertificateEntryData]:
        return self.values()

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self._title, id="cert-form-title")
            for field, label, placeholder, tooltip in _FIELDS:
                with Horizontal(classes="form-row"):
                    yield Label(label)
                    yield Input(self._initial.get(field, ""), placeholder=placeholder, id=f"cert-field-{field}",
                                tooltip=tooltip, compact=True)
                yield Static("", id=f"cert-error-{field}", classes="field-error", markup=False)
            yield Static("", id="cert-form-info", markup=False)
            with Horizontal(id="cert-form-buttons"):
                yield Button("Cancel (esc)", id="cert-form-cancel")
                yield Button("Stage entry (ctrl+s)", id="cert-form-ok", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#cert-field-name" if not self._initial.get("name") else "#cert-field-cert", Input).focus()
        self.request_check()

    def values(self) -> tuple[str, CertificateEntryData]:
        name = self.query_one("#cert-field-name", Input).value.strip()
        entry = {k: self.query_one(f"#cert-field-{k}", Input).value.strip() for k in ("cert", "key")}
        return name, entry

    # CheckedForm: reading the files and asking OpenSSL happens in a thread.

    def current(self) -> tuple[str, CertificateEntryData]:
        return self.values()

    def compute(self, values: tuple[str, CertificateEntryData]) -> tuple[FieldCheck, CertificateInfo | None]:
        name, entry = values
        check = self._check(name, entry)
        info = self._inspect(name, entry) if entry["cert"] and entry["key"] else None
        return check, info

    def show(self, values: tuple[str, CertificateEntryData], result: tuple[FieldCheck, CertificateInfo | None]) -> None:
        check, info = result
        messages: dict[str, list[tuple[str, str]]] = {f: [] for f, *_ in _FIELDS}
        for issue in check.issues:
            messages.setdefault(issue.field, []).append((issue.severity, issue.message))
        if info is not None:
            for finding in info.findings:
                field = str(finding.loc[2]) if len(finding.loc) > 2 else "cert"
                messages.setdefault(field, []).append((finding.severity, f"{finding.message} — fix: {finding.fix}"))
        self.last_check, self.last_info = check, info
        for field, *_ in _FIELDS:
            found = messages.get(field, []) if (self._show_all or field in self._touched) else []
            error = self.query_one(f"#cert-error-{field}", Static)
            error.update("\n".join(m if s == "error" else f"warning: {m}" for s, m in found))
            error.set_class(bool(found), "-shown")
            error.set_class(bool(found) and all(s == "warning" for s, _ in found), "-warning")
            self.query_one(f"#cert-field-{field}", Input).set_class(any(s == "error" for s, _ in found), "-invalid")
        summary = info_summary(info) if info is not None else "Type the certificate and key paths: they are checked as you type."
        self.query_one("#cert-form-info", Static).update(summary)
        # A certificate with errors can still be staged (to fix its routes first), but not a broken entry.
        self.ok = check.ok
        self.query_one("#cert-form-ok", Button).disabled = not self.ok

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        if event.input.id and event.input.id.startswith("cert-field-"):
            self._touched.add(event.input.id[len("cert-field-"):])
        self.request_check()



class MapCertificateForm(ModalScreen[tuple[int, str | None] | None]):
    """Choose a route and the certificate it serves (mode: terminate), or passthrough again."""

    DEFAULT_CSS = """
    MapCertificateForm { align: center middle; }
    MapCertificateForm > Vertical {
        width: 80; max-width: 100%; height: auto; border: thick $primary 60%; background: $surface; padding: 0 1;
    }
    MapCertificateForm #map-title { text-style: bold; padding: 0 0 1 0; }
    MapCertificateForm .form-row { height: auto; }
    MapCertificateForm .form-row Label { width: 14; padding: 0 1 0 0; text-align: right; }
    MapCertificateForm .form-row Select { width: 1fr; }
    MapCertificateForm #map-note { padding: 1 0 0 14; height: auto; color: $text-muted; }
    MapCertificateForm #map-buttons { height: auto; align-horizontal: right; padding: 1 0 0 0; }
    MapCertificateForm #map-buttons Button { margin-left: 2; }
    """
    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="map_certificate.cancel", tooltip="Close, change nothing"),
        Binding("ctrl+s", "submit", "Stage", id="map_certificate.submit", tooltip="Stage this mapping"),
    ]
    PASSTHROUGH = "(none: passthrough)"

    def __init__(self, routes: list[tuple[int, str]], certificates: list[str], *,
                 route: int | None = None, certificate: str | None = None):
        super().__init__()
        self._routes = routes
        self._certificates = certificates
        self._route = route if route is not None else (routes[0][0] if routes else None)
        self._certificate = certificate or (certificates[0] if certificates else self.PASSTHROUGH)

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Serve a certificate on a route", id="map-title")
            with Horizontal(classes="form-row"):
                yield Label("route")
                yield Select([(label, index) for index, label in self._routes], value=self._route,
                             allow_blank=False, id="map-route", tooltip="The route that will terminate TLS", compact=True)
            with Horizontal(classes="form-row"):
                yield Label("certificate")
                options = [(name, name) for name in self._certificates] + [(self.PASSTHROUGH, self.PASSTHROUGH)]
                yield Select(options, value=self._certificate, allow_blank=False, id="map-certificate",
                             tooltip="The certificate entry to serve", compact=True)
            yield Static(Text("The route switches to mode: terminate and is checked against the certificate's "
                              "names when staged; choosing passthrough removes the certificate."), id="map-note")
            with Horizontal(id="map-buttons"):
                yield Button("Cancel (esc)", id="map-cancel")
                yield Button("Stage mapping (ctrl+s)", id="map-ok", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#map-route", Select).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "map-ok":
            self.action_submit()
        else:
            self.action_cancel()

    def action_submit(self) -> None:
        route = self.query_one("#map-route", Select).value
        certificate = self.query_one("#map-certificate", Select).value
        if route is Select.BLANK or route is None:
            self.notify("Choose a route.", severity="error")
            return
        self.dismiss((int(route), None if certificate == self.PASSTHROUGH else str(certificate)))

    def action_cancel(self) -> None:
        self.dismiss(None)
