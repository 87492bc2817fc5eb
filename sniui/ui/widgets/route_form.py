"""The route editor: one field per YAML key, validated by the config models as you type.

The form knows nothing about the rest of the config: the screen hands it a
`check` callable (the staging session's `check_route`) that validates the
edited route in context and returns the messages `sniui check` would print,
keyed by field. The form marks each field with its messages and only lets a
route that validates go back to the screen.
"""

from __future__ import annotations

from typing import Any, Callable

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.suggester import SuggestFromList
from textual.widgets import Button, Input, Label, Select, Static

from sniui.ui.route_data import RouteData, fields_to_route, route_to_fields
from sniui.ui.staging import FieldCheck
from sniui.ui.widgets.form_check import CheckedForm

# (field, label, placeholder, tooltip). Words as the config reference uses them.
_TEXT_FIELDS: dict[str, tuple[str, str, str]] = {
    "name": ("name", "optional; shown in tables and logs", "A unique name for the route (defaults to its first pattern)"),
    "sni": ("sni", "shop.example.com, *.apps.example.com, ~^(?<app>.+)\\.k8s$",
            "Server names, comma separated: exact, *.wildcard, .base, trailing.*, or ~regex"),
    "upstream": ("upstream", "group name, host:port, or template $app.svc:443",
                 "An upstream group, a single host:port, or a template using the regex captures"),
    "certificate": ("certificate", "name from certificates:", "The certificate to serve (mode: terminate)"),
    "client_ca": ("client_ca", "optional: CA file to require client certificates", "Require a client certificate signed by this CA"),
    "allow": ("allow", "*.svc.cluster.local:443, *.svc:8000-8999", "Bound templated upstreams to these host-glob:port entries"),
    "allow_clients": ("allow_clients", "10.0.0.0/8, 192.168.0.0/16", "Only these client addresses may use the route"),
}
_SELECT_FIELDS: dict[str, tuple[str, list[tuple[str, str]], str]] = {
    "mode": ("mode", [("passthrough", "passthrough"), ("terminate", "terminate")],
             "passthrough relays TLS untouched; terminate decrypts with a certificate"),
    "proxy_protocol": ("proxy_protocol", [("none", ""), ("v1", "v1"), ("v2", "v2")],
                       "Send a PROXY protocol header to the upstream"),
}
FIELD_ORDER = ("name", "sni", "upstream", "mode", "certificate", "client_ca", "proxy_protocol", "allow", "allow_clients")


class RouteForm(CheckedForm[RouteData | None]):
    """Add or edit one route; dismisses with the route data, or None when cancelled."""

    DEFAULT_CSS = """
    RouteForm { align: center middle; }
    RouteForm > Vertical {
        width: 96; max-width: 100%; height: auto; max-height: 100%;
        border: thick $primary 60%; background: $surface; padding: 0 1;
    }
    RouteForm #form-title { text-style: bold; padding: 0 0 1 0; }
    RouteForm VerticalScroll { height: auto; max-height: 28; }
    RouteForm .form-row { height: auto; }
    RouteForm .form-row Label { width: 16; padding: 0 1 0 0; text-align: right; }
    RouteForm .form-row Input, RouteForm .form-row Select { width: 1fr; }
    RouteForm .form-row Input.-invalid { border: tall $error; }
    RouteForm .field-error { color: $text-error; padding: 0 0 0 16; height: auto; display: none; }
    RouteForm .field-error.-shown { display: block; }
    RouteForm .field-error.-warning { color: $text-warning; }
    RouteForm #form-general { color: $text-error; height: auto; display: none; }
    RouteForm #form-general.-shown { display: block; }
    RouteForm #form-buttons { height: auto; align-horizontal: right; padding: 1 0 0 0; }
    RouteForm #form-buttons Button { margin-left: 2; }
    """
    SUBMIT_REFUSED = "Fix the marked fields first: the route would not validate."
    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="route_form.cancel", tooltip="Close the editor, change nothing"),
        Binding("ctrl+s", "submit", "Stage", id="route_form.submit", tooltip="Put this route into the staged config"),
    ]

    def __init__(
        self,
        title: str,
        check: Callable[[RouteData], FieldCheck],
        route: RouteData | None = None,
        *,
        upstream_names: list[str] | None = None,
        certificate_names: list[str] | None = None,
    ):
        super().__init__()
        self._title = title
        self._check = check
        self._base: RouteData = dict(route or {})
        self._initial = route_to_fields(self._base)
        self._upstream_names = upstream_names or []
        self._certificate_names = certificate_names or []
        self.last_check: FieldCheck = FieldCheck()
        # Fields the user has changed: an empty new form should not open covered in
        # "missing required field" messages. Everything is shown after a submit attempt.
        self._touched: set[str] = {f for f, v in self._initial.items() if v and f != "mode"}

    def result_value(self) -> RouteData:
        return self.route()

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self._title, id="form-title")
            with VerticalScroll():
                for field in FIELD_ORDER:
                    with Horizontal(classes="form-row"):
                        if field in _SELECT_FIELDS:
                            label, options, tooltip = _SELECT_FIELDS[field]
                            yield Label(label)
                            value = self._initial.get(field, "")
                            yield Select([(text, v) for text, v in options], value=value, allow_blank=False,
                                         id=f"field-{field}", tooltip=tooltip, compact=True)
                        else:
                            label, placeholder, tooltip = _TEXT_FIELDS[field]
                            yield Label(label)
                            suggester = None
                            if field == "upstream" and self._upstream_names:
                                suggester = SuggestFromList(self._upstream_names, case_sensitive=True)
                            elif field == "certificate" and self._certificate_names:
                                suggester = SuggestFromList(self._certificate_names, case_sensitive=True)
                            yield Input(self._initial.get(field, ""), placeholder=placeholder, id=f"field-{field}",
                                        tooltip=tooltip, suggester=suggester, compact=True)
                    yield Static("", id=f"error-{field}", classes="field-error", markup=False)
            yield Static("", id="form-general", markup=False)
            with Horizontal(id="form-buttons"):
                yield Button("Cancel (esc)", id="form-cancel")
                yield Button("Stage route (ctrl+s)", id="form-ok", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#field-sni", Input).focus()
        self.request_check()

    # -- values and validation -------------------------------------------------

    def values(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for field in FIELD_ORDER:
            widget = self.query_one(f"#field-{field}")
            if isinstance(widget, Select):
                value = widget.value
                out[field] = "" if value is Select.BLANK or value is None else str(value)
            else:
                assert isinstance(widget, Input)
                out[field] = widget.value
        return out

    def route(self) -> RouteData:
        return fields_to_route(self.values(), self._base)

    # CheckedForm: the check runs in a thread; `show` puts its answer at the fields.

    def current(self) -> RouteData:
        return self.route()

    def compute(self, route: RouteData) -> FieldCheck:
        return self._check(route)

    def show(self, route: RouteData, check: FieldCheck) -> None:
        self.last_check = check
        for field in FIELD_ORDER:
            issues = check.for_field(field) if (self._show_all or field in self._touched) else []
            error = self.query_one(f"#error-{field}", Static)
            error.update("\n".join(check.messages(field)) if issues else "")
            error.set_class(bool(issues), "-shown")
            error.set_class(bool(issues) and all(i.severity == "warning" for i in issues), "-warning")
            widget = self.query_one(f"#field-{field}")
            widget.set_class(any(i.severity == "error" for i in issues), "-invalid")
        # Issues about the route as a whole, or fields the form does not show.
        other = [str(i) for i in check.issues if i.field not in FIELD_ORDER]
        general = self.query_one("#form-general", Static)
        general.update("\n".join(other))
        general.set_class(bool(other), "-shown")
        self.query_one("#form-ok", Button).disabled = not check.ok

    def _touch(self, widget_id: str | None) -> None:
        if widget_id and widget_id.startswith("field-"):
            self._touched.add(widget_id[len("field-"):])

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self._touch(event.input.id)
        self.request_check()

    def on_select_changed(self, event: Select.Changed) -> None:
        event.stop()
        self._touch(event.select.id)
        self.request_check()



class FallbackForm(CheckedForm[dict[str, Any] | None]):
    """Edit `default` (no route matched) or `no_sni` (the hello had no server name)."""

    DEFAULT_CSS = """
    FallbackForm { align: center middle; }
    FallbackForm > Vertical {
        width: 84; max-width: 100%; height: auto; border: thick $primary 60%; background: $surface; padding: 0 1;
    }
    FallbackForm #fallback-title { text-style: bold; padding: 0 0 1 0; }
    FallbackForm .form-row { height: auto; }
    FallbackForm .form-row Label { width: 16; padding: 0 1 0 0; text-align: right; }
    FallbackForm .form-row Input, FallbackForm .form-row Select { width: 1fr; }
    FallbackForm .form-row Input.-invalid { border: tall $error; }
    FallbackForm .field-error { color: $text-error; padding: 0 0 0 16; height: auto; display: none; }
    FallbackForm .field-error.-shown { display: block; }
    FallbackForm .field-error.-warning { color: $text-warning; }
    FallbackForm #fallback-buttons { height: auto; align-horizontal: right; padding: 1 0 0 0; }
    FallbackForm #fallback-buttons Button { margin-left: 2; }
    """
    OK_BUTTON = "fallback-ok"
    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="fallback_form.cancel", tooltip="Close the editor, change nothing"),
        Binding("ctrl+s", "submit", "Stage", id="fallback_form.submit", tooltip="Put this fallback into the staged config"),
    ]
    FIELDS = ("action", "reject_with", "upstream", "proxy_protocol")

    def __init__(self, name: str, check: Callable[[dict[str, Any]], FieldCheck], data: dict[str, Any] | None,
                 *, upstream_names: list[str] | None = None):
        super().__init__()
        self._name = name
        self._check = check
        self._data = dict(data or {})
        self._upstream_names = upstream_names or []
        self.last_check: FieldCheck = FieldCheck()

    def result_value(self) -> dict[str, Any]:
        return self.value()

    def compose(self) -> ComposeResult:
        what = "no route matched" if self._name == "default" else "the client sent no server name"
        with Vertical():
            yield Label(f"{self._name}: what happens when {what}", id="fallback-title")
            rows: list[tuple[str, Any]] = [
                ("action", Select([("reject", "reject"), ("route", "route")], value=self._data.get("action", "reject"),
                                  allow_blank=False, id="fallback-action", compact=True,
                                  tooltip="reject the connection, or route it to an upstream")),
                ("reject_with", Select([("alert (TLS unrecognized_name)", "alert"), ("close", "close"), ("reset", "reset")],
                                       value=self._data.get("reject_with", "alert"), allow_blank=False,
                                       id="fallback-reject_with", compact=True, tooltip="How a rejected client is told")),
                ("upstream", Input(self._data.get("upstream") or "", placeholder="group name or host:port (action: route)",
                                   id="fallback-upstream", compact=True,
                                   suggester=SuggestFromList(self._upstream_names, case_sensitive=True) if self._upstream_names else None,
                                   tooltip="Where unmatched connections go when action is route")),
                ("proxy_protocol", Select([("none", ""), ("v1", "v1"), ("v2", "v2")], value=self._data.get("proxy_protocol") or "",
                                          allow_blank=False, id="fallback-proxy_protocol", compact=True,
                                          tooltip="Send a PROXY protocol header to the upstream")),
            ]
            for field, widget in rows:
                with Horizontal(classes="form-row"):
                    yield Label(field)
                    yield widget
                yield Static("", id=f"fallback-error-{field}", classes="field-error", markup=False)
            with Horizontal(id="fallback-buttons"):
                yield Button("Cancel (esc)", id="fallback-cancel")
                yield Button("Stage (ctrl+s)", id="fallback-ok", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#fallback-action", Select).focus()
        self.request_check()

    def value(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for field in self.FIELDS:
            widget = self.query_one(f"#fallback-{field}")
            raw = widget.value if isinstance(widget, (Input, Select)) else ""
            text = "" if raw is Select.BLANK or raw is None else str(raw).strip()
            if text and not (field == "action" and text == "reject") and not (field == "reject_with" and text == "alert"):
                out[field] = text
        return out

    def current(self) -> dict[str, Any]:
        return self.value()

    def compute(self, value: dict[str, Any]) -> FieldCheck:
        return self._check(value)

    def show(self, value: dict[str, Any], check: FieldCheck) -> None:
        self.last_check = check
        for field in self.FIELDS:
            issues = check.for_field(field)
            error = self.query_one(f"#fallback-error-{field}", Static)
            error.update("\n".join(check.messages(field)))
            error.set_class(bool(issues), "-shown")
            error.set_class(bool(issues) and all(i.severity == "warning" for i in issues), "-warning")
            self.query_one(f"#fallback-{field}").set_class(any(i.severity == "error" for i in issues), "-invalid")
        self.query_one("#fallback-ok", Button).disabled = not check.ok

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.request_check()

    def on_select_changed(self, event: Select.Changed) -> None:
        event.stop()
        self.request_check()



def fields_summary(route: dict[str, Any]) -> str:
    """One line naming a route for dialogs."""
    sni = route.get("sni") or []
    return f"{route.get('name') or (sni[0] if sni else '?')}: {', '.join(sni)} → {route.get('upstream', '')}"
