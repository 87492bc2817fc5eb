"""The route table: compiled once per config, then a pure `match()`.

Precedence is nginx's `map { hostnames; }`: exact name, then the longest
leading wildcard, then the longest trailing wildcard, then regexes in file
order, then `default`. Exact and wildcard lookups are dictionary probes per
label of the name, so their cost does not grow with the number of routes.

`match(..., explain=True)` also evaluates every other pattern and says why it
lost; the engine calls it without `explain` on the hot path, the CLI and the
TUI with it. Both take the same decision.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Literal, Mapping

from sniui.config.addresses import HostPort, normalize_server_name, parse_host_port
from sniui.config.models import Config, Fallback, Route, allowed_by, classify_upstream, parse_allow_entry
from sniui.config.patterns import Pattern, PatternKind
from sniui.config.templates import Template, parse_template

Action = Literal["route", "reject"]
_EMPTY: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class CompiledRoute:
    index: int
    label: str
    config: Route
    patterns: tuple[Pattern, ...]
    template: Template
    upstream_kind: Literal["template", "address", "group"]
    allow: tuple[tuple[str, int, int], ...]
    allow_clients: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
    address: HostPort | None   # the fixed upstream, parsed once, when it is a single host:port
    group: str | None          # the upstream group, when the upstream names one

    def admits_client(self, ip: str) -> bool:
        if not self.allow_clients:
            return True
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        return any(address in network for network in self.allow_clients)


@dataclass(frozen=True, slots=True)
class Candidate:
    """One pattern considered for a name, and what became of it."""

    route: str
    pattern: str
    kind: str
    matched: bool
    won: bool
    reason: str


# Not frozen: a frozen dataclass pays object.__setattr__ per field, and a decision
# is built for every connection. Treat it as immutable all the same.
@dataclass(slots=True)
class Decision:
    sni: str | None                       # the name as compared (lowercased, no trailing dot, xn--)
    action: Action
    route: str | None                     # route label, or "default" / "no_sni"
    route_index: int | None
    pattern: str | None
    kind: str                              # exact | wildcard | trailing wildcard | regex | default | no_sni
    upstream: str | None                   # rendered: a group name or host:port
    upstream_group: str | None = None      # set when `upstream` names an upstream group
    address: HostPort | None = None        # set when `upstream` is a single host:port
    captures: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    groups: tuple[str, ...] = ()
    mode: Literal["passthrough", "terminate"] = "passthrough"
    certificate: str | None = None
    proxy_protocol: Literal["v1", "v2"] | None = None
    reject_reason: str | None = None
    reject_with: Literal["alert", "close", "reset"] = "alert"
    target: CompiledRoute | None = None
    alpn: str | None = None
    candidates: tuple[Candidate, ...] = field(default=())

    @property
    def summary(self) -> str:
        name = self.sni if self.sni is not None else "(no SNI)"
        via = f"route {self.route!r} ({self.kind} {self.pattern})" if self.pattern else f"{self.kind}"
        if self.action == "reject":
            return f"{name} → reject ({self.reject_with}) via {via}: {self.reject_reason}"
        return f"{name} → {self.upstream} via {via}"

    def explanation(self) -> list[str]:
        """Human lines: the decision, then each candidate pattern and why it won or lost."""
        lines = [self.summary]
        if self.captures:
            lines.append("captures: " + ", ".join(f"{k}={v!r}" for k, v in self.captures.items()))
        elif self.groups:
            lines.append("groups: " + ", ".join(f"${i}={v!r}" for i, v in enumerate(self.groups, 1)))
        for c in self.candidates:
            mark = "✓" if c.won else ("✗" if not c.matched else "·")
            lines.append(f"  {mark} {c.kind:<17} {c.pattern:<40} [{c.route}] {c.reason}")
        return lines

    def to_json(self) -> dict:
        return {
            "sni": self.sni,
            "alpn": self.alpn,
            "action": self.action,
            "route": self.route,
            "pattern": self.pattern,
            "kind": self.kind,
            "upstream": self.upstream,
            "upstream_group": self.upstream_group,
            "captures": dict(self.captures),
            "mode": self.mode,
            "reject_reason": self.reject_reason,
            "reject_with": self.reject_with if self.action == "reject" else None,
            "explanation": self.explanation(),
        }


_Hit = tuple[CompiledRoute, Pattern]


class RouteTable:
    """An immutable, compiled view of a config's routes."""

    def __init__(self, config: Config):
        self.config = config
        self.routes: tuple[CompiledRoute, ...] = tuple(
            _compile_route(i, label, route) for i, (label, route) in enumerate(zip(config.route_labels(), config.routes))
        )
        self._groups = frozenset(config.upstreams)
        self._reject_with = config.default.reject_with
        self._exact: dict[str, _Hit] = {}
        self._below: dict[str, _Hit] = {}      # `*.a.b` and `.a.b`: names strictly below a.b
        self._base: dict[str, _Hit] = {}       # `.a.b`: a.b itself
        self._trailing: dict[str, _Hit] = {}   # `www.a.*`: keyed by "www.a"
        self._regexes: list[_Hit] = []
        for route in self.routes:
            for pattern in route.patterns:
                hit = (route, pattern)
                if pattern.kind is PatternKind.EXACT:
                    self._exact.setdefault(pattern.key, hit)
                elif pattern.kind is PatternKind.LEADING_WILDCARD:
                    self._below.setdefault(pattern.key, hit)
                    if pattern.includes_base:
                        self._base.setdefault(pattern.key, hit)
                elif pattern.kind is PatternKind.TRAILING_WILDCARD:
                    self._trailing.setdefault(pattern.key, hit)
                else:
                    self._regexes.append(hit)

    def __len__(self) -> int:
        return len(self.routes)

    # -- the decision -------------------------------------------------------

    def match(self, sni: str | None, alpn: str | None = None, *, explain: bool = False) -> Decision:
        if sni is None or sni == "":
            fallback_name = "no_sni" if self.config.no_sni is not None else "default"
            fallback = self.config.no_sni or self.config.default
            decision = self._fallback(None, fallback_name, fallback, "the client sent no server name", alpn)
            return decision
        try:
            name = normalize_server_name(sni)
        except ValueError as exc:
            return Decision(sni, "reject", None, None, None, "invalid", None, reject_reason=str(exc),
                            reject_with=self.config.default.reject_with, alpn=alpn)
        hit, match = self._lookup(name)
        candidates = self._explain(name, hit) if explain else ()
        if hit is None:
            decision = self._fallback(name, "default", self.config.default, "no route matched", alpn)
            return _with_candidates(decision, candidates)
        route, pattern = hit
        return self._route_decision(name, route, pattern, match, alpn, candidates)

    def _lookup(self, name: str) -> tuple[_Hit | None, re.Match[str] | None]:
        hit = self._exact.get(name)
        if hit is not None:
            return hit, None
        hit = self._base.get(name)
        if hit is not None:
            return hit, None
        # Longest leading wildcard first: walk the suffixes from the left.
        dot = name.find(".")
        while dot != -1:
            hit = self._below.get(name[dot + 1:])
            if hit is not None:
                return hit, None
            dot = name.find(".", dot + 1)
        # Longest trailing wildcard first: walk the prefixes from the right.
        dot = name.rfind(".")
        while dot > 0:
            hit = self._trailing.get(name[:dot])
            if hit is not None:
                return hit, None
            dot = name.rfind(".", 0, dot)
        for hit in self._regexes:
            match = hit[1].regex.search(name)  # type: ignore[union-attr]
            if match is not None:
                return hit, match
        return None, None

    def _route_decision(self, name: str, route: CompiledRoute, pattern: Pattern, match: re.Match[str] | None,
                        alpn: str | None, candidates: tuple[Candidate, ...]) -> Decision:
        config = route.config
        if match is None and route.upstream_kind != "template":
            # The common case, kept to one positional constructor call: it runs per connection.
            return Decision(name, "route", route.label, route.index, pattern.text, pattern.kind.label, config.upstream,
                            route.group, route.address, _EMPTY, (), config.mode, config.certificate,
                            config.proxy_protocol, None, self._reject_with, route, alpn, candidates)
        captures = MappingProxyType({k: (v or "") for k, v in match.groupdict().items()}) if match else _EMPTY
        groups = tuple(g or "" for g in match.groups()) if match else ()
        base = dict(
            sni=name, route=route.label, route_index=route.index, pattern=pattern.text, kind=pattern.kind.label,
            captures=captures, groups=groups, mode=config.mode, certificate=config.certificate,
            proxy_protocol=config.proxy_protocol, target=route, alpn=alpn, candidates=candidates,
            reject_with=self.config.default.reject_with,
        )
        rendered = route.template.render(match)
        if route.upstream_kind == "group":
            return Decision(action="route", upstream=rendered, upstream_group=rendered, **base)
        if route.upstream_kind == "address":
            return Decision(action="route", upstream=rendered, address=route.address, **base)
        # A template: the client chose the captures, so the result is checked before use.
        if ":" not in rendered and rendered in self._groups:
            return Decision(action="route", upstream=rendered, upstream_group=rendered, **base)
        try:
            address = parse_host_port(rendered)
        except ValueError as exc:
            return Decision(action="reject", upstream=rendered, reject_reason=f"rendered upstream is invalid: {exc}", **base)
        if route.allow and not allowed_by(list(route.allow), address.host, address.port):
            allowed = ", ".join(config.allow)
            return Decision(action="reject", upstream=rendered,
                            reject_reason=f"rendered upstream {rendered!r} is outside this route's allow list ({allowed})", **base)
        return Decision(action="route", upstream=str(address), address=address, **base)

    def _fallback(self, name: str | None, label: str, fallback: Fallback, why: str, alpn: str | None) -> Decision:
        if fallback.action == "reject":
            return Decision(name, "reject", label, None, None, label, None, reject_reason=why,
                            reject_with=fallback.reject_with, alpn=alpn)
        upstream = fallback.upstream or ""
        is_group = classify_upstream(upstream) == "group"
        return Decision(
            name, "route", label, None, None, label, upstream,
            upstream_group=upstream if is_group else None,
            address=None if is_group else parse_host_port(upstream),
            proxy_protocol=fallback.proxy_protocol, reject_with=fallback.reject_with, alpn=alpn,
        )

    # -- the explanation ------------------------------------------------------

    def _explain(self, name: str, winner: _Hit | None) -> tuple[Candidate, ...]:
        winner_pattern = winner[1] if winner else None
        out = []
        for route in self.routes:
            for pattern in route.patterns:
                matched = _pattern_matches(pattern, name)
                won = winner is not None and pattern is winner_pattern and route is winner[0]
                if won:
                    reason = "wins: " + _why_won(pattern)
                elif not matched:
                    reason = "does not match"
                else:
                    reason = _why_lost(pattern, winner_pattern)
                out.append(Candidate(route.label, pattern.text, pattern.kind.label, matched, won, reason))
        # Show them in the order they are consulted, winners and near misses first.
        out.sort(key=lambda c: (not c.won, not c.matched))
        return tuple(out)


def _with_candidates(decision: Decision, candidates: tuple[Candidate, ...]) -> Decision:
    if not candidates:
        return decision
    return replace(decision, candidates=candidates)


def _pattern_matches(pattern: Pattern, name: str) -> bool:
    if pattern.kind is PatternKind.EXACT:
        return name == pattern.key
    if pattern.kind is PatternKind.LEADING_WILDCARD:
        return name.endswith("." + pattern.key) or (pattern.includes_base and name == pattern.key)
    if pattern.kind is PatternKind.TRAILING_WILDCARD:
        return name.startswith(pattern.key + ".") and len(name) > len(pattern.key) + 1
    return pattern.regex.search(name) is not None  # type: ignore[union-attr]


def _why_won(pattern: Pattern) -> str:
    if pattern.kind is PatternKind.EXACT:
        return "exact names are consulted first"
    if pattern.kind is PatternKind.REGEX:
        return "first matching regex in file order (no exact or wildcard name matched)"
    return f"longest matching {pattern.kind.label} ({pattern.specificity} fixed labels)"


def _why_lost(pattern: Pattern, winner: Pattern | None) -> str:
    if winner is None:
        return "matches, but was not consulted"
    if pattern.kind > winner.kind:
        return f"matches, but {winner.kind.label} names are consulted before {pattern.kind.label}s"
    if pattern.kind is PatternKind.REGEX:
        return "matches, but an earlier regex in file order won"
    if pattern.specificity < winner.specificity:
        return f"matches, but is shorter ({pattern.specificity} fixed labels) than the winner ({winner.specificity})"
    return "matches, but an equally specific pattern earlier in the file won"


def _compile_route(index: int, label: str, route: Route) -> CompiledRoute:
    return CompiledRoute(
        index=index,
        label=label,
        config=route,
        patterns=tuple(route.patterns),
        template=parse_template(route.upstream),
        upstream_kind=classify_upstream(route.upstream),
        allow=tuple(parse_allow_entry(entry) for entry in route.allow),
        allow_clients=tuple(ipaddress.ip_network(cidr, strict=False) for cidr in route.allow_clients),
        address=parse_host_port(route.upstream) if classify_upstream(route.upstream) == "address" else None,
        group=route.upstream if classify_upstream(route.upstream) == "group" else None,
    )
