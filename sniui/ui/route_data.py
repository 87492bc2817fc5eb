"""Routes as the YAML holds them: the precedence rows the routes table lists, and editor text.

Pure functions over config *data* (dicts), so they also work on a working copy
that does not validate yet.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from sniui.config.models import route_labels
from sniui.config.patterns import PatternKind, parse_pattern

RouteData = dict[str, Any]

# Form fields that hold lists in the YAML; the editor shows them as comma-separated text.
LIST_FIELDS = ("sni", "allow", "allow_clients", "alpn")
# Form fields the route editor offers, in display order. Fields a route has that
# the form does not show (e.g. description, min_version) are kept untouched.
FORM_FIELDS = ("name", "sni", "upstream", "mode", "certificate", "client_ca", "proxy_protocol", "allow", "allow_clients")


@dataclass(frozen=True, slots=True)
class RouteRow:
    """One pattern of one route, as the routes table lists it."""

    route_index: int | None     # None for the default / no_sni rows
    pattern_index: int
    label: str
    kind: str                   # exact | wildcard | trailing wildcard | regex | default | no_sni | invalid
    pattern: str
    upstream: str
    mode: str
    error: str | None = None

    @property
    def key(self) -> str:
        return "default" if self.route_index is None and self.kind == "default" else (
            "no_sni" if self.route_index is None else f"{self.route_index}:{self.pattern_index}")


def precedence_rows(data: dict[str, Any]) -> list[RouteRow]:
    """Every pattern of the working copy in the order the table consults them.

    Works on data that does not validate yet: a pattern that does not parse is
    listed last among the routes, marked invalid, so the user can still select
    and fix it.
    """
    routes: list[RouteData] = list(data.get("routes") or [])
    labels = labels_of(routes)
    ranked: list[tuple[tuple, RouteRow]] = []
    for i, (label, route) in enumerate(zip(labels, routes)):
        sni = route.get("sni") or []
        for j, text in enumerate([sni] if isinstance(sni, str) else sni):
            upstream = str(route.get("upstream", ""))
            mode = str(route.get("mode", "passthrough"))
            try:
                pattern = parse_pattern(text)
            except (ValueError, TypeError) as exc:
                ranked.append(((9, 0, i, j), RouteRow(i, j, label, "invalid", str(text), upstream, mode, str(exc))))
                continue
            # nginx's order: exact, longest leading wildcard, longest trailing wildcard, regexes in file order.
            specificity = -pattern.specificity if pattern.kind in (PatternKind.LEADING_WILDCARD, PatternKind.TRAILING_WILDCARD) else 0
            ranked.append(((int(pattern.kind), specificity, i, j), RouteRow(i, j, label, pattern.kind.label, pattern.text, upstream, mode)))
    rows = [row for _, row in sorted(ranked, key=lambda item: item[0])]
    for name in ("no_sni", "default"):
        fallback = data.get(name)
        if name == "default" and fallback is None:
            fallback = {}
        if fallback is None:
            continue
        action = fallback.get("action", "reject")
        target = fallback.get("upstream") or "" if action == "route" else f"reject ({fallback.get('reject_with', 'alert')})"
        rows.append(RouteRow(None, 0, name, name, "(no SNI)" if name == "no_sni" else "(anything else)", target, "passthrough"))
    return rows


def labels_of(routes: list[RouteData]) -> list[str]:
    # route_labels only reads .name and .sni, so a stand-in lets invalid routes keep a label too.
    stand_ins = []
    for route in routes:
        sni = route.get("sni") or ["(no sni)"]
        stand_ins.append(SimpleNamespace(name=route.get("name") or None, sni=[sni] if isinstance(sni, str) else list(sni) or ["(no sni)"]))
    return route_labels(stand_ins)  # type: ignore[arg-type]


# -- form text <-> route data -------------------------------------------------------------


def route_to_fields(route: RouteData) -> dict[str, str]:
    """The text each editor field starts with."""
    out: dict[str, str] = {}
    for name in FORM_FIELDS:
        value = route.get(name)
        if value is None:
            out[name] = "passthrough" if name == "mode" else ""
        elif isinstance(value, list):
            out[name] = ", ".join(str(v) for v in value)
        else:
            out[name] = str(value)
    return out


def fields_to_route(fields: dict[str, str], base: RouteData | None = None) -> RouteData:
    """Route data from editor text; fields the form does not show are kept from `base`.

    Empty text means "not set", so the model's default applies — the same as
    leaving the key out of the YAML.
    """
    route: RouteData = {k: copy.deepcopy(v) for k, v in (base or {}).items() if k not in FORM_FIELDS}
    for name in FORM_FIELDS:
        if name not in fields:
            if base and name in base:
                route[name] = copy.deepcopy(base[name])
            continue
        text = fields[name].strip()
        if not text:
            continue
        if name in LIST_FIELDS:
            items = [item.strip() for item in text.split(",") if item.strip()]
            route[name] = items
        elif name == "mode" and text == "passthrough":
            continue
        else:
            route[name] = text
    return route
