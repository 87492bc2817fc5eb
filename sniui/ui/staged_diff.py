"""What a staged config changes, as values: route and entry changes, fallbacks, and the
`tests:` expectations whose decision or verdict changes. The apply dialog renders these.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from sniui.commands.check import ExpectationResult
from sniui.config.models import Expectation
from sniui.routing.table import RouteTable
from sniui.ui.route_data import RouteData


@dataclass(frozen=True, slots=True)
class RouteChange:
    kind: Literal["added", "removed", "changed", "moved"]
    label: str
    old_index: int | None
    new_index: int | None
    fields: tuple[str, ...] = ()     # for "changed": the fields whose value differs
    before: RouteData | None = None
    after: RouteData | None = None

    def describe(self) -> str:
        if self.kind == "added":
            return f"+ routes[{self.new_index}] {self.label}: {_route_brief(self.after)}"
        if self.kind == "removed":
            return f"- routes[{self.old_index}] {self.label}: {_route_brief(self.before)}"
        if self.kind == "moved":
            return f"↕ {self.label}: routes[{self.old_index}] → routes[{self.new_index}]"
        moved = f" (was routes[{self.old_index}])" if self.old_index != self.new_index else ""
        parts = []
        for name in self.fields:
            old = (self.before or {}).get(name)
            new = (self.after or {}).get(name)
            parts.append(f"{name}: {_show(old)} → {_show(new)}")
        return f"~ routes[{self.new_index}] {self.label}{moved}: " + "; ".join(parts)


@dataclass(frozen=True, slots=True)
class EntryChange:
    """A change to a named entry of a mapping section (certificates, upstreams)."""

    section: str
    kind: Literal["added", "removed", "changed"]
    name: str

    def describe(self) -> str:
        mark = {"added": "+", "removed": "-", "changed": "~"}[self.kind]
        return f"{mark} {self.section}.{self.name}"


@dataclass(frozen=True, slots=True)
class ExpectationOutcome:
    """One `tests:` entry run against one route table."""

    index: int
    sni: str | None
    alpn: str | None
    expect: str
    result: str                 # "reject" or the rendered upstream
    route: str | None           # the deciding route label ("default", "no_sni" for fallbacks)
    passed: bool
    summary: str                # Decision.summary: the line `sniui match` prints first

    @property
    def decision_key(self) -> tuple[str, str | None]:
        return (self.result, self.route)


@dataclass(frozen=True, slots=True)
class ExpectationChange:
    before: ExpectationOutcome | None     # None: the running table could not evaluate it (new test)
    after: ExpectationOutcome

    @property
    def breaks(self) -> bool:
        return not self.after.passed and (self.before is None or self.before.passed)

    @property
    def fixes(self) -> bool:
        return self.after.passed and self.before is not None and not self.before.passed

    def describe(self) -> str:
        name = self.after.sni if self.after.sni is not None else "(no SNI)"
        verdict = "now FAILS" if self.breaks else ("now passes" if self.fixes else ("passes" if self.after.passed else "still fails"))
        was = f"{self.before.result} via {self.before.route}" if self.before else "(not run)"
        return f"{name}: {was} → {self.after.result} via {self.after.route}; expect {self.after.expect}: {verdict}"


@dataclass(frozen=True)
class StagedDiff:
    routes: tuple[RouteChange, ...] = ()
    entries: tuple[EntryChange, ...] = ()
    sections: tuple[str, ...] = ()              # other top-level sections that differ
    tests: tuple[ExpectationChange, ...] = ()   # expectations whose decision or verdict changes
    fallbacks: tuple[str, ...] = ()             # `default` / `no_sni` changes, one line each

    @property
    def empty(self) -> bool:
        return not (self.routes or self.entries or self.sections or self.tests)

    @property
    def breaking_tests(self) -> list[ExpectationChange]:
        return [t for t in self.tests if t.breaks]

    def lines(self) -> list[str]:
        """A plain-text rendering; the dialog colours the same facts."""
        out: list[str] = []
        if self.routes:
            out.append("routes:")
            out += ["  " + change.describe() for change in self.routes]
        if self.entries:
            out.append("entries:")
            out += ["  " + change.describe() for change in self.entries]
        if self.fallbacks:
            out += self.fallbacks
        others = [name for name in self.sections if name not in ("default", "no_sni")]
        if others:
            out.append("sections changed: " + ", ".join(others))
        if self.tests:
            out.append("tests that change:")
            out += ["  " + change.describe() for change in self.tests]
        return out or ["no changes"]



def evaluate_expectation(table: RouteTable, index: int, test: Expectation) -> ExpectationOutcome:
    """Run one `tests:` entry with `sniui check`'s own verdict, so the panel and the CLI never disagree."""
    result = ExpectationResult(test, table.match(test.sni, test.alpn))
    decision = result.decision
    return ExpectationOutcome(index, test.sni, test.alpn, test.expect, result.outcome, decision.route,
                              result.passed, decision.summary)


def fallback_change(name: str, before: dict[str, Any] | None, after: dict[str, Any] | None) -> str:
    if after is None and name == "no_sni":
        return "- no_sni removed: hellos without SNI follow default"
    if before is None and name == "no_sni":
        return f"+ no_sni: {_show_fallback(after)}"
    return f"~ {name}: {_show_fallback(before)} → {_show_fallback(after)}"


def _show_fallback(data: dict[str, Any] | None) -> str:
    data = data or {}
    if data.get("action", "reject") == "route":
        proxy = f" (PROXY {data['proxy_protocol']})" if data.get("proxy_protocol") else ""
        return f"route to {data.get('upstream') or '?'}{proxy}"
    return f"reject ({data.get('reject_with', 'alert')})"


def _route_brief(route: RouteData | None) -> str:
    if not route:
        return ""
    sni = route.get("sni") or []
    names = ", ".join([sni] if isinstance(sni, str) else sni)
    mode = f" [{route['mode']}]" if route.get("mode") and route["mode"] != "passthrough" else ""
    return f"{names} → {route.get('upstream', '')}{mode}"


def _show(value: Any) -> str:
    if value is None:
        return "(unset)"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)
