"""The YAML contract as pydantic models: the single source of truth for the file,
its validation messages and the TUI's editors.

Field-level checks live on the fields. Checks that need the whole document
(does this upstream group exist? does the template name a capture of this
route's regex?) live in `cross_check`, which returns located issues instead of
raising, so every mistake in a file is reported at once with its line.
"""

from __future__ import annotations

import difflib
import fnmatch
import ipaddress
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, PrivateAttr

from sniui.config.addresses import HostPort, parse_host_port, parse_listen_address
from sniui.config.patterns import Pattern, PatternKind, parse_pattern
from sniui.config.templates import Template, parse_template
from sniui.config.units import Duration, Size

Loc = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Issue:
    """One problem found in a config, located by its field path."""

    loc: Loc
    message: str
    severity: Literal["error", "warning"] = "error"


def format_loc(loc: Loc) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


class Model(BaseModel):
    # A misspelt key is the commonest config mistake; refuse it instead of ignoring it.
    model_config = ConfigDict(extra="forbid", validate_assignment=False)


def _check_host_port(value: str) -> str:
    parse_host_port(value)
    return value


def _check_listen(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # `address: 8443` means all IPv4 addresses on that port
    if not isinstance(value, str):
        raise ValueError("expected an address such as 127.0.0.1:8443 or [::1]:8443")
    parse_listen_address(value)
    return value


def _check_cidr(value: str) -> str:
    try:
        ipaddress.ip_network(str(value), strict=False)
    except ValueError:
        raise ValueError(f"{value!r} is not an address or CIDR range such as 10.0.0.0/8") from None
    return str(value)


def _check_pattern(value: str) -> str:
    parse_pattern(value)
    return value


def _one_or_many(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


HostPortText = Annotated[str, AfterValidator(_check_host_port)]
CidrText = Annotated[str, AfterValidator(_check_cidr)]
PatternText = Annotated[str, AfterValidator(_check_pattern)]


class Listener(Model):
    address: Annotated[str, BeforeValidator(_check_listen)] = "127.0.0.1:8443"
    accept_proxy_protocol: bool = False

    @property
    def host_port(self) -> HostPort:
        return parse_listen_address(self.address)


class Timeouts(Model):
    client_hello: Duration = 5.0
    connect: Duration = 1.0
    idle: Duration = 600.0


class ResolverConfig(Model):
    nameservers: list[str] = Field(default_factory=list)
    cache_ttl: Duration = 30.0


class UpstreamGroup(Model):
    servers: Annotated[list[HostPortText], Field(min_length=1)]
    balance: Literal["round_robin", "least_conn", "source_hash"] = "round_robin"
    max_fails: Annotated[int, Field(ge=0)] = 1
    fail_timeout: Duration = 10.0


class CertificateEntry(Model):
    cert: str
    key: str


class Route(Model):
    name: str | None = None
    description: str | None = None
    sni: Annotated[list[PatternText], BeforeValidator(_one_or_many), Field(min_length=1)]
    upstream: str
    mode: Literal["passthrough", "terminate"] = "passthrough"
    certificate: str | None = None
    client_ca: str | None = None
    min_version: Literal["1.2", "1.3"] = "1.2"
    alpn: list[str] | None = None
    proxy_protocol: Literal["v1", "v2"] | None = None
    allow_clients: list[CidrText] = Field(default_factory=list)
    allow: list[str] = Field(default_factory=list)

    @cached_property
    def patterns(self) -> list[Pattern]:
        return [parse_pattern(text) for text in self.sni]

    @cached_property
    def template(self) -> Template:
        return parse_template(self.upstream)


class Fallback(Model):
    action: Literal["reject", "route"] = "reject"
    reject_with: Literal["alert", "close", "reset"] = "alert"
    upstream: str | None = None
    proxy_protocol: Literal["v1", "v2"] | None = None


class Limits(Model):
    max_connections: Annotated[int, Field(ge=1)] = 10000
    max_connections_per_client: Annotated[int, Field(ge=1)] = 256
    max_client_hello: Annotated[Size, Field(ge=1024, le=1024 * 1024)] = 16 * 1024


class Expectation(Model):
    sni: str | None
    alpn: str | None = None
    expect: str
    description: str | None = None


class Config(Model):
    listen: list[Listener] = Field(default_factory=lambda: [Listener()])
    timeouts: Timeouts = Field(default_factory=Timeouts)
    resolver: ResolverConfig = Field(default_factory=ResolverConfig)
    upstreams: dict[str, UpstreamGroup] = Field(default_factory=dict)
    certificates: dict[str, CertificateEntry] = Field(default_factory=dict)
    routes: list[Route] = Field(default_factory=list)
    default: Fallback = Field(default_factory=Fallback)
    no_sni: Fallback | None = None
    limits: Limits = Field(default_factory=Limits)
    tests: list[Expectation] = Field(default_factory=list)

    # Where relative paths (certificates, client CAs) are anchored: the config file's folder.
    _base_dir: Path = PrivateAttr(default_factory=Path.cwd)
    _source: str | None = PrivateAttr(default=None)

    @property
    def base_dir(self) -> Path:
        return self._base_dir

    @property
    def source(self) -> str | None:
        """The file this config was read from, if any."""
        return self._source

    def anchored(self, base_dir: Path, source: str | None = None) -> "Config":
        self._base_dir = Path(base_dir)
        self._source = source
        return self

    def path_of(self, relative: str) -> Path:
        path = Path(relative).expanduser()
        return path if path.is_absolute() else self._base_dir / path

    def route_labels(self) -> list[str]:
        return route_labels(self.routes)


def route_labels(routes: list[Route]) -> list[str]:
    """A unique display name per route: its `name`, else its first pattern."""
    labels: list[str] = []
    taken = {r.name for r in routes if r.name}
    for index, route in enumerate(routes):
        label = route.name or route.sni[0]
        if not route.name and label in taken:
            label = f"{label}#{index}"
        taken.add(label)
        labels.append(label)
    return labels


def _did_you_mean(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def classify_upstream(text: str) -> Literal["template", "address", "group"]:
    if "$" in text:
        return "template"
    if ":" in text:
        return "address"
    return "group"


def parse_allow_entry(entry: str) -> tuple[str, int, int]:
    """`*.svc.cluster.local:443`, `host:8000-8999` or `*.svc:*` → (host glob, low port, high port)."""
    host, sep, ports = entry.rpartition(":")
    if not sep or not host:
        raise ValueError(f"{entry!r}: write it as host-glob:port, e.g. *.svc.cluster.local:443 or *.svc:8000-8999")
    if any(c.isspace() or c in "/@" for c in host):
        raise ValueError(f"{entry!r}: host glob contains characters a hostname cannot")
    if ports == "*":
        return host.lower(), 1, 65535
    low_text, _, high_text = ports.partition("-")
    if not low_text.isdigit() or (high_text and not high_text.isdigit()):
        raise ValueError(f"{entry!r}: port must be a number, a range such as 8000-8999, or *")
    low, high = int(low_text), int(high_text or low_text)
    if not (1 <= low <= high <= 65535):
        raise ValueError(f"{entry!r}: ports must lie in 1-65535 with the low end first")
    return host.lower(), low, high


def allowed_by(entries: list[tuple[str, int, int]], host: str, port: int) -> bool:
    return any(fnmatch.fnmatchcase(host, glob) and low <= port <= high for glob, low, high in entries)


def _check_upstream_reference(
    text: str, loc: Loc, groups: list[str], *, allow_template: bool, route: Route | None = None
) -> list[Issue]:
    kind = classify_upstream(text)
    if kind == "group":
        if text not in groups:
            hint = _did_you_mean(text, groups)
            if not groups:
                hint = " (no `upstreams:` are defined; write host:port for a single server)"
            return [Issue(loc, f"unknown upstream group {text!r}{hint}")]
        return []
    if kind == "address":
        try:
            parse_host_port(text)
        except ValueError as exc:
            return [Issue(loc, str(exc))]
        return []
    if not allow_template:
        return [Issue(loc, f"{text!r}: captures ($name) can only be used in a route whose sni is a regex")]
    try:
        template = parse_template(text)
    except ValueError as exc:
        return [Issue(loc, str(exc))]
    assert route is not None
    patterns = route.patterns
    non_regex = [p.text for p in patterns if p.kind is not PatternKind.REGEX]
    if non_regex:
        return [Issue(loc, f"{text!r} uses captures, but pattern {non_regex[0]!r} of this route is not a regex and captures nothing")]
    issues = []
    for pattern in patterns:
        for ref in template.references:
            if isinstance(ref, int):
                if ref < 1 or ref > pattern.group_count:
                    issues.append(Issue(loc, f"${ref}: regex {pattern.text!r} has {pattern.group_count} group(s)"))
            elif ref not in pattern.group_names:
                names = ", ".join(pattern.group_names) or "none"
                issues.append(Issue(loc, f"${ref} is not a capture of regex {pattern.text!r} (its named groups: {names}){_did_you_mean(ref, list(pattern.group_names))}"))
    return issues


def cross_check(config: Config) -> list[Issue]:
    """Checks that need the whole document. Returns every issue found, errors and warnings."""
    issues: list[Issue] = []
    groups = list(config.upstreams)
    certificates = list(config.certificates)

    names: dict[str, int] = {}
    seen_patterns: dict[str, tuple[int, int]] = {}
    for i, route in enumerate(config.routes):
        loc: Loc = ("routes", i)
        if route.name:
            if route.name in names:
                issues.append(Issue(loc + ("name",), f"route name {route.name!r} is already used by routes[{names[route.name]}]"))
            names.setdefault(route.name, i)
        for j, pattern in enumerate(route.patterns):
            # `.a.b` and `*.a.b` both claim everything below a.b: nginx calls that a conflict too.
            key = f"{pattern.kind.value}:{pattern.key}" if pattern.kind is not PatternKind.REGEX else f"re:{pattern.text}"
            if key in seen_patterns:
                other_route, other_index = seen_patterns[key]
                issues.append(Issue(loc + ("sni", j), f"{pattern.text!r} is already routed by routes[{other_route}].sni[{other_index}]; the first would always win"))
            else:
                seen_patterns[key] = (i, j)
        issues += _check_upstream_reference(route.upstream, loc + ("upstream",), groups, allow_template=True, route=route)
        if route.mode == "terminate":
            if not route.certificate:
                issues.append(Issue(loc + ("certificate",), "mode: terminate needs a certificate (a name from `certificates:`)"))
        else:
            for field in ("certificate", "client_ca"):
                if getattr(route, field):
                    issues.append(Issue(loc + (field,), f"{field} is only used with mode: terminate; this route passes TLS through untouched"))
            if route.alpn is not None:
                issues.append(Issue(loc + ("alpn",), "alpn lists the protocols to offer when terminating; it needs mode: terminate"))
        if route.certificate and route.certificate not in certificates:
            issues.append(Issue(loc + ("certificate",), f"unknown certificate {route.certificate!r}{_did_you_mean(route.certificate, certificates)}"))
        for k, entry in enumerate(route.allow):
            try:
                parse_allow_entry(entry)
            except ValueError as exc:
                issues.append(Issue(loc + ("allow", k), str(exc)))
        if route.allow and classify_upstream(route.upstream) != "template":
            issues.append(Issue(loc + ("allow",), "allow bounds templated upstreams; this route's upstream is fixed", "warning"))

    for field in ("default", "no_sni"):
        fallback: Fallback | None = getattr(config, field)
        if fallback is None:
            continue
        if fallback.action == "route":
            if not fallback.upstream:
                issues.append(Issue((field, "upstream"), f"{field}.action: route needs an upstream (a group name or host:port)"))
            else:
                issues += _check_upstream_reference(fallback.upstream, (field, "upstream"), groups, allow_template=False)
        elif fallback.upstream:
            issues.append(Issue((field, "upstream"), f"upstream is ignored while {field}.action is reject", "warning"))

    for group_name, group in config.upstreams.items():
        seen_servers: dict[str, int] = {}
        for i, server in enumerate(group.servers):
            key = str(parse_host_port(server))
            if key in seen_servers:
                issues.append(Issue(("upstreams", group_name, "servers", i),
                                    f"{server} is already listed at servers[{seen_servers[key]}]; list each server once"))
            seen_servers.setdefault(key, i)

    for i, nameserver in enumerate(config.resolver.nameservers):
        try:
            parse_host_port(nameserver, default_port=53)
        except ValueError as exc:
            issues.append(Issue(("resolver", "nameservers", i), str(exc)))

    addresses: dict[str, int] = {}
    for i, listener in enumerate(config.listen):
        key = str(listener.host_port)
        if key in addresses and listener.host_port.port != 0:
            issues.append(Issue(("listen", i, "address"), f"{listener.address} is already listed at listen[{addresses[key]}]"))
        addresses.setdefault(key, i)
    return issues
