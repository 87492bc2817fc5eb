"""An nginx `stream` config → a sniui config, with a finding for everything not carried over.

The shape understood (see the README's "Coming from nginx"):

- `map $ssl_preread_server_name $var { … }` feeding `proxy_pass $var` in a
  server with `ssl_preread on` → passthrough routes, one per map entry (runs of
  entries with the same upstream and no comment share a route);
- a server with `listen … ssl` → terminating routes. Its names come from a map
  on `$ssl_server_name` feeding its `proxy_pass` or `ssl_certificate`, or, when
  a passthrough map sends names to that server's address (the shape
  `sniui export nginx` writes), from those map entries;
- `upstream` blocks → upstream groups; an upstream whose servers are all
  `down` (what the exporter writes for "reject") and a `default ""` → reject.

nginx's map quirk is kept: without `hostnames;` a key such as `*.a.b` is a
literal string that no real name matches, so it is imported as a regex matching
that literal, with a finding that offers the wildcard the author probably meant.

Reading the stream block (includes, maps, upstreams, servers) is nginx_stream.py's
job; this module turns what it read into routes and groups, validates the result
by loading it, and holds the entry points (`import_nginx`, `import_nginx_text`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sniui.config import Config, ConfigError, load_text, to_yaml
from sniui.config.addresses import parse_host_port
from sniui.config.models import classify_upstream
from sniui.config.patterns import PatternKind, parse_pattern
from sniui.config.templates import parse_template
from sniui.interop import Finding
from sniui.interop.nginx_parser import Directive, ParsedConfig, parse_file, parse_text
from sniui.interop.nginx_stream import (
    Map, NginxStream, Server, UpstreamBlock, finding_at, nginx_seconds, read_stream,
)
from sniui.routing.table import RouteTable

PREREAD_NAME = "$ssl_preread_server_name"
HANDSHAKE_NAME = "$ssl_server_name"


@dataclass
class ImportResult:
    config: Config
    yaml: str
    findings: list[Finding]


@dataclass
class _Destination:
    """What a map value or proxy_pass resolves to."""

    kind: str                      # "route" | "reject" | "terminate" | "skip"
    upstream: str | None = None
    server: Server | None = None   # the terminating server, for kind == "terminate"


@dataclass
class _PendingRoute:
    fields: dict[str, Any]
    origins: list[Directive]       # one per sni pattern


class _Importer:
    def __init__(self, stream: NginxStream, findings: list[Finding], *, assume_hostnames: bool, base_dir: Path):
        self.assume_hostnames = assume_hostnames
        self.base_dir = base_dir
        self.findings = findings
        self.maps = stream.maps
        self.servers = stream.servers
        self.groups = {name: _group(block) for name, block in stream.upstreams.items() if block.servers}
        self.reject_groups = {name for name, block in stream.upstreams.items() if not block.servers}
        self.used_maps: set[str] = set()           # targets of the maps some proxy_pass or certificate reads
        self.certificates: dict[str, dict[str, str]] = {}
        self.described_comments = 0
        self._origins: list[list[Directive]] = []   # per output route: the map entry of each sni pattern

    def warn(self, message: str, where: Directive | None = None) -> None:
        self.findings.append(finding_at(message, where))

    # -- resolving values --------------------------------------------------------

    def _terminating_server_at(self, address: str) -> Server | None:
        try:
            target = parse_host_port(address)
        except ValueError:
            return None
        for server in self.servers:
            for listen in server.listens:
                if not listen.ssl:
                    continue
                mine = parse_host_port(listen.address)
                same_host = mine.host == target.host or mine.host in ("0.0.0.0", "::") and target.host in ("127.0.0.1", "localhost", "::1")
                if mine.port == target.port and same_host:
                    return server
        return None

    def _resolve(self, value: str, where: Directive) -> _Destination:
        """A map value or proxy_pass argument → what sniui should do."""
        if value == "":
            return _Destination("reject")
        if "$" in value:
            return _Destination("route", value)
        if value.startswith("unix:"):
            self.warn(f"{value}: unix sockets not supported by sniui; left out", where)
            return _Destination("skip")
        kind = classify_upstream(value)
        if kind == "group":
            if value in self.reject_groups:
                return _Destination("reject")
            if value in self.groups:
                return _Destination("route", value)
            self.warn(f"{value!r} is neither an upstream block nor host:port (nginx would fail with 'no port'); left out", where)
            return _Destination("skip")
        try:
            parse_host_port(value)
        except ValueError as exc:
            self.warn(f"{exc}; left out", where)
            return _Destination("skip")
        server = self._terminating_server_at(value)
        if server is not None:
            return _Destination("terminate", server=server)
        return _Destination("route", value)

    def _sni_pattern(self, key: str, map_: Map, where: Directive) -> str | None:
        if key.startswith("~"):
            text = key
        elif not map_.hostnames and (key.startswith("*.") or key.startswith(".") or key.endswith(".*")):
            if self.assume_hostnames:
                self.warn(f"map {map_.target} has no `hostnames;`, where nginx compares {key!r} as a literal string; "
                          f"imported as the wildcard it was meant to be, as asked", where)
                text = key
            else:
                text = "~^" + re.escape(key.lower()) + "$"
                self.warn(f"map {map_.target} has no `hostnames;`, so nginx compares {key!r} as a literal string and no real "
                          f"name matches it; imported as that literal ({text}) to keep nginx's behaviour. For the wildcard it "
                          f"was probably meant to be, write sni: {key!r} (or add `hostnames;` to the nginx map)", where)
        else:
            text = key
        try:
            parse_pattern(text)
        except ValueError as exc:
            self.warn(f"map key {key!r}: {exc}; left out", where)
            return None
        return text

    def _map_value_for(self, map_: Map, key: str, where: Directive) -> str | None:
        """The value `map_` gives the names that `key` (a key of another map) stands for."""
        for entry in map_.entries:
            if entry.key == key:
                return entry.value
        pattern = None
        try:
            pattern = parse_pattern(key)
        except ValueError:
            pass
        values = {e.value for e in map_.entries} | ({map_.default} if map_.default is not None else set())
        if pattern is not None and pattern.kind is PatternKind.EXACT:
            return _evaluate_map(map_, pattern.key)
        if len(values) == 1:
            return values.pop()
        self.warn(f"cannot tell which value map {map_.target} gives the names {key!r} stand for (no entry with that key); left out", where)
        return None

    def _setting_value(self, server: Server, name: str, key: str | None, where: Directive) -> str | None:
        """A server setting that may be a literal or `$var` from a map on $ssl_server_name."""
        directive = server.settings.get(name)
        if directive is None or not directive.args:
            return None
        value = directive.args[0]
        if not value.startswith("$"):
            return value
        map_ = self.maps.get(value)
        if map_ is None or map_.source != HANDSHAKE_NAME:
            self.warn(f"{name} {value}: only a map on {HANDSHAKE_NAME} is understood here", directive)
            return None
        self.used_maps.add(map_.target)
        if key is None:
            return map_.default
        return self._map_value_for(map_, key, where)

    def _certificate_name(self, cert: str, key: str) -> str:
        for name, entry in self.certificates.items():
            if entry == {"cert": cert, "key": key}:
                return name
        stem = re.sub(r"[^A-Za-z0-9_.-]", "_", Path(cert).stem) or "certificate"
        name, counter = stem, 2
        while name in self.certificates:
            name, counter = f"{stem}-{counter}", counter + 1
        self.certificates[name] = {"cert": cert, "key": key}
        return name

    def _absolute(self, path: str) -> str:
        # nginx reads relative paths from its conf prefix: the main file's folder.
        return path if Path(path).is_absolute() else str((self.base_dir / path).resolve())

    def _terminate_fields(self, server: Server, key: str | None, where: Directive) -> dict[str, Any] | None:
        """Route fields for names that `server` terminates; `key` is the map key they came from."""
        if server.proxy_pass is None:
            self.warn("terminating server has no proxy_pass; left out", server.directive)
            return None
        target = server.proxy_pass.args[0]
        if target.startswith("$"):
            map_ = self.maps.get(target)
            if map_ is None or map_.source != HANDSHAKE_NAME:
                self.warn(f"proxy_pass {target}: a terminating server needs a map on {HANDSHAKE_NAME}; left out", server.proxy_pass)
                return None
            self.used_maps.add(map_.target)
            value = self._map_value_for(map_, key, where) if key is not None else map_.default
            if value is None:
                return None
        else:
            value = target
        upstream = self._resolve(value, where)
        if upstream.kind != "route":
            self.warn(f"terminated names whose upstream is {value!r} cannot be expressed as a sniui route; left out", where)
            return None
        cert = self._setting_value(server, "ssl_certificate", key, where)
        cert_key = self._setting_value(server, "ssl_certificate_key", key, where)
        if not cert or not cert_key or "$" in cert or "$" in cert_key:
            self.warn("terminating server without a usable ssl_certificate/ssl_certificate_key for these names; left out", where)
            return None
        fields: dict[str, Any] = {
            "upstream": upstream.upstream, "mode": "terminate",
            "certificate": self._certificate_name(self._absolute(cert), self._absolute(cert_key)),
        }
        verify = server.settings.get("ssl_verify_client")
        client_ca = server.settings.get("ssl_client_certificate")
        if verify is not None and verify.args and verify.args[0] != "off":
            if client_ca is None:
                self.warn("ssl_verify_client without ssl_client_certificate; no client CA imported", verify)
            else:
                fields["client_ca"] = self._absolute(client_ca.args[0])
            if verify.args[0] != "on":
                self.warn(f"ssl_verify_client {verify.args[0]}: sniui requires the client certificate (as `on`)", verify)
        elif client_ca is not None:
            self.warn("ssl_client_certificate without ssl_verify_client on: nginx does not check clients, so neither will sniui", client_ca)
        protocols = server.settings.get("ssl_protocols")
        if protocols is not None:
            offered = set(protocols.args)
            if offered & {"SSLv2", "SSLv3", "TLSv1", "TLSv1.1"}:
                self.warn("ssl_protocols: sniui never offers TLS below 1.2; the older versions are dropped", protocols)
            if "TLSv1.3" in offered and "TLSv1.2" not in offered:
                fields["min_version"] = "1.3"
        alpn = server.settings.get("ssl_alpn")
        if alpn is not None:
            fields["alpn"] = list(alpn.args)
        if _on(server.settings.get("proxy_protocol")):
            fields["proxy_protocol"] = "v1"
        if server.allow_clients:
            fields["allow_clients"] = server.allow_clients
        return fields

    # -- converting ----------------------------------------------------------------

    def _routes_from_map(self, map_: Map, context: Server, terminating: bool) -> list[_PendingRoute]:
        pending: list[_PendingRoute] = []
        for entry in map_.entries:
            where = entry.directive
            if entry.key == "":
                continue   # the no-SNI entry: _convert_server makes it no_sni
            pattern = self._sni_pattern(entry.key, map_, where)
            if pattern is None:
                continue
            if terminating:
                fields = self._terminate_fields(context, entry.key, where)
                if fields is None:
                    continue
            else:
                upstream = self._resolve(entry.value, where)
                if upstream.kind == "skip":
                    continue
                if upstream.kind == "reject":
                    shown = entry.value or '""'
                    self.warn(f"{entry.key!r} → {shown}: nginx closes these connections, a sniui route cannot "
                              "reject; left out, so these names fall to later routes or the default", where)
                    continue
                if upstream.kind == "terminate":
                    fields = self._terminate_fields(upstream.server, entry.key, where)  # type: ignore[arg-type]
                    if fields is None:
                        continue
                else:
                    fields = {"upstream": upstream.upstream}
                    if _on(context.settings.get("proxy_protocol")):
                        fields["proxy_protocol"] = "v1"
                    if context.allow_clients:
                        fields["allow_clients"] = context.allow_clients
            if "$" in fields["upstream"] and not self._template_fits(pattern, fields["upstream"], where):
                continue
            if entry.directive.comment:
                fields["description"] = entry.directive.comment
                self.described_comments += 1
            fields["sni"] = [pattern]
            pending.append(_PendingRoute(fields, [where]))
        return _merge_runs(pending)

    def _template_fits(self, pattern: str, template: str, where: Directive) -> bool:
        parsed = parse_pattern(pattern)
        if parsed.kind is not PatternKind.REGEX:
            self.warn(f"value {template!r} uses variables, but key {pattern!r} is not a regex and captures nothing; left out", where)
            return False
        try:
            references = parse_template(template).references
        except ValueError as exc:
            self.warn(f"{exc}; left out", where)
            return False
        for ref in references:
            if isinstance(ref, int) and not 1 <= ref <= parsed.group_count or isinstance(ref, str) and ref not in parsed.group_names:
                self.warn(f"value {template!r}: ${ref} is not a capture of {pattern!r} (an nginx variable sniui does not have); left out", where)
                return False
        return True

    def _to_the_name_itself(self, value: str, context: Server, where: Directive) -> _PendingRoute:
        """`proxy_pass $ssl_preread_server_name:443`: every name goes to itself. sniui says that as a
        last regex capturing the whole name; the default then only sees hellos without a name."""
        upstream = _SERVER_NAME_VARIABLE.sub("$1", value)
        self.warn(f"{value}: sends every name to itself, which lets any client reach any host on that port; imported as "
                  f"the catch-all route ~^(.+)$ → {upstream}. Bound it with `allow:` (e.g. ['*.internal:443'])", where)
        fields: dict[str, Any] = {"sni": ["~^(.+)$"], "upstream": upstream}
        if _on(context.settings.get("proxy_protocol")):
            fields["proxy_protocol"] = "v1"
        if context.allow_clients:
            fields["allow_clients"] = context.allow_clients
        return _PendingRoute(fields, [where])

    def _fallback(self, value: str | None, context: Server, where: Directive | None, label: str) -> dict[str, Any]:
        if value is None:
            return {"action": "reject"}
        upstream = self._resolve(value, where or context.directive)
        if upstream.kind == "route" and "$" not in (upstream.upstream or ""):
            out: dict[str, Any] = {"action": "route", "upstream": upstream.upstream}
            if _on(context.settings.get("proxy_protocol")):
                out["proxy_protocol"] = "v1"
            return out
        if upstream.kind == "terminate":
            self.warn(f"{label} goes to a terminating server; sniui's {label} cannot terminate, imported as reject", where)
        elif upstream.kind == "route":
            self.warn(f"{label} value {value!r} uses variables; sniui's {label} takes a fixed upstream, imported as reject", where)
        return {"action": "reject"}

    def convert(self) -> dict[str, Any]:
        internal = {id(s) for s in self.servers if s.terminates and self._is_chained(s)}
        public = [s for s in self.servers if id(s) not in internal]
        routes: list[_PendingRoute] = []
        default: dict[str, Any] | None = None
        no_sni: dict[str, Any] | None = None
        listen: list[dict[str, Any]] = []
        seen_maps: set[str] = set()
        for server in public:
            for item in server.listens:
                entry: dict[str, Any] = {"address": item.address}
                if item.proxy_protocol:
                    entry["accept_proxy_protocol"] = True
                if entry not in listen:
                    listen.append(entry)
            server_routes, server_default, server_no_sni = self._convert_server(server, seen_maps)
            routes += server_routes
            if server_default is not None:
                if default is None:
                    default = server_default
                elif server_default != default:
                    self.warn("this server's default differs from an earlier server's; sniui has one default for every "
                              "listener, the first is kept", server.directive)
            if server_no_sni is not None and no_sni is None:
                no_sni = server_no_sni
        if len(public) > 1:
            self.warn(f"{len(public)} servers merged: sniui routes every listener with one table", public[1].directive)
        for map_ in self.maps.values():
            if map_.target not in self.used_maps:
                self.warn(f"map {map_.source} {map_.target} is not used by any proxy_pass or certificate; not translated", map_.directive)
        data: dict[str, Any] = {}
        if listen:
            data["listen"] = listen
        timeouts, resolver = self._globals(public or self.servers)
        if timeouts:
            data["timeouts"] = timeouts
        if resolver:
            data["resolver"] = resolver
        if self.groups:
            data["upstreams"] = self.groups
        if self.certificates:
            data["certificates"] = self.certificates
        data["routes"] = [r.fields for r in routes]
        data["default"] = default or {"action": "reject"}
        if no_sni is not None:
            data["no_sni"] = no_sni
        self._origins = [r.origins for r in routes]
        return data

    def _is_chained(self, server: Server) -> bool:
        """Does another server send names to this terminating server's address?"""
        for other in self.servers:
            if other is server or other.proxy_pass is None:
                continue
            target = other.proxy_pass.args[0]
            values = [target]
            if target.startswith("$") and target in self.maps:
                map_ = self.maps[target]
                values = [e.value for e in map_.entries] + ([map_.default] if map_.default else [])
            if any(self._terminating_server_at(v) is server for v in values if ":" in v and "$" not in v):
                return True
        return False

    def _convert_server(self, server: Server, seen_maps: set[str]):
        if server.proxy_pass is None:
            self.warn("server without proxy_pass: nothing to route; left out", server.directive)
            return [], None, None
        target = server.proxy_pass.args[0]
        terminating = server.terminates
        if not terminating and not server.ssl_preread:
            self.warn("server without `ssl_preread on` or `listen … ssl`: nginx proxies any bytes without reading a "
                      "ClientHello, sniui always reads one; imported as the default route", server.directive)
        if _names_itself(target) and not terminating:
            return [self._to_the_name_itself(target, server, server.proxy_pass)], {"action": "reject"}, None
        if not target.startswith("$"):
            if terminating:
                return self._terminating_without_map(server)
            return [], self._fallback(target, server, server.proxy_pass, "default"), None
        map_ = self.maps.get(target)
        if map_ is None:
            self.warn(f"proxy_pass {target}: no map sets this variable; not translated", server.proxy_pass)
            return [], None, None
        expected = HANDSHAKE_NAME if terminating else PREREAD_NAME
        if map_.source != expected:
            self.warn(f"map {map_.source} {map_.target}: sniui routes by {expected} here; not translated", map_.directive)
            return [], None, None
        if not terminating and not server.ssl_preread:
            self.warn(f"proxy_pass by {PREREAD_NAME} without `ssl_preread on`: nginx never reads the name", server.proxy_pass)
        self.used_maps.add(map_.target)
        if map_.target in seen_maps:
            return [], None, None   # a second server on the same map adds listeners only
        seen_maps.add(map_.target)
        routes = self._routes_from_map(map_, server, terminating)
        if terminating:
            default = {"action": "reject"}
            if map_.default is not None:
                self.warn(f"default of terminating map {map_.target}: sniui's default cannot terminate; imported as reject", map_.default_directive)
            return routes, default, None
        if map_.default is not None and _names_itself(map_.default):
            routes.append(self._to_the_name_itself(map_.default, server, map_.default_directive))  # type: ignore[arg-type]
            default = {"action": "reject"}
        else:
            default = self._fallback(map_.default, server, map_.default_directive, "default")
        no_sni = None
        for entry in map_.entries:
            if entry.key == "":
                no_sni = self._fallback(entry.value, server, entry.directive, "no_sni")
        return routes, default, no_sni

    def _terminating_without_map(self, server: Server):
        """`listen … ssl` + a literal proxy_pass: every name on the port. Names from a certificate map, if any."""
        cert = server.settings.get("ssl_certificate")
        if cert is not None and cert.args and cert.args[0].startswith("$") and cert.args[0] in self.maps:
            map_ = self.maps[cert.args[0]]
            self.used_maps.add(map_.target)
            fake = Map(map_.source, map_.target, map_.hostnames, map_.entries, None, None, map_.directive)
            return self._routes_from_map(fake, server, True), {"action": "reject"}, None
        self.warn("this server terminates TLS for every name on its port; sniui terminates per name, so add a route "
                  "with mode: terminate and the certificate's names by hand; left out", server.directive)
        return [], None, None

    def _globals(self, servers: list[Server]) -> tuple[dict[str, Any], dict[str, Any]]:
        timeouts: dict[str, Any] = {}
        resolver: dict[str, Any] = {}
        for nginx_name, sniui_name in (("preread_timeout", "client_hello"), ("proxy_connect_timeout", "connect"),
                                       ("proxy_timeout", "idle")):
            values = {}
            for server in servers:
                directive = server.settings.get(nginx_name)
                if directive is not None and directive.args:
                    seconds = nginx_seconds(directive.args[0], directive, self.findings)
                    if seconds is not None:
                        values.setdefault(seconds, directive)
            if values:
                seconds, directive = next(iter(values.items()))
                timeouts[sniui_name] = seconds
                if len(values) > 1:
                    self.warn(f"{nginx_name} differs between servers; sniui has one, {directive.args[0]} is used", directive)
        for server in servers:
            directive = server.settings.get("resolver")
            if directive is None or resolver:
                continue
            nameservers = []
            for arg in directive.args:
                if arg.startswith("valid="):
                    seconds = nginx_seconds(arg[6:], directive, self.findings)
                    if seconds is not None:
                        resolver["cache_ttl"] = seconds
                elif "=" in arg:
                    self.warn(f"resolver option {arg!r} not translated", directive)
                else:
                    nameservers.append(arg)
            resolver["nameservers"] = nameservers
        return timeouts, resolver

    # -- validating --------------------------------------------------------------

    def finish(self, data: dict[str, Any], main_file: str, comment_count: int) -> Config:
        """Validate; drop what sniui refuses (with a finding each) until the config loads."""
        for _ in range(len(data["routes"]) + 10):
            try:
                config = load_text(_dump(data), file="<import>", base_dir=self.base_dir).config
                break
            except ConfigError as exc:
                if not self._repair(data, exc):
                    raise
        else:  # pragma: no cover - each repair removes something, so this ends
            raise RuntimeError("import did not converge")
        data["tests"] = _generated_tests(config)
        config = load_text(_dump(data), file="<import>", base_dir=self.base_dir).config
        comments = comment_count - self.described_comments
        if comments:
            self.findings.append(Finding(f"{comments} comment(s) not on a map entry line were dropped "
                                         "(comments on an entry's line become that route's description)", main_file))
        return config

    def _repair(self, data: dict[str, Any], exc: ConfigError) -> bool:
        changed = False
        drop_routes: set[int] = set()
        drop_patterns: dict[int, set[int]] = {}
        for issue in exc.errors:
            loc = issue.loc
            if len(loc) >= 2 and loc[0] == "routes" and isinstance(loc[1], int):
                index = loc[1]
                origins = self._origins[index]
                if len(loc) >= 4 and loc[2] == "sni" and isinstance(loc[3], int):
                    drop_patterns.setdefault(index, set()).add(loc[3])
                    origin = origins[loc[3]] if loc[3] < len(origins) else origins[0]
                else:
                    drop_routes.add(index)
                    origin = origins[0]
                self.warn(f"sniui refuses this entry: {issue.message}; left out", origin)
                changed = True
            elif loc and loc[0] in ("default", "no_sni"):
                self.warn(f"{loc[0]}: {issue.message}; imported as reject")
                data[loc[0]] = {"action": "reject"}
                changed = True
            elif loc and loc[0] == "listen" and len(loc) > 1 and isinstance(loc[1], int):
                self.warn(f"listen {data['listen'][loc[1]]['address']}: {issue.message}; left out")
                data["listen"][loc[1]] = None
                changed = True
        if "listen" in data:
            data["listen"] = [item for item in data["listen"] if item is not None]
        routes, origins = [], []
        for index, (route, route_origins) in enumerate(zip(data["routes"], self._origins)):
            if index in drop_routes:
                continue
            if index in drop_patterns:
                keep = [j for j in range(len(route["sni"])) if j not in drop_patterns[index]]
                if not keep:
                    continue
                route = {**route, "sni": [route["sni"][j] for j in keep]}
                route_origins = [route_origins[j] for j in keep if j < len(route_origins)]
            routes.append(route)
            origins.append(route_origins)
        data["routes"], self._origins = routes, origins
        return changed


_SERVER_NAME_VARIABLE = re.compile(r"\$(?:\{ssl_preread_server_name\}|ssl_preread_server_name(?![A-Za-z0-9_]))")


def _group(block: UpstreamBlock) -> dict[str, Any]:
    group: dict[str, Any] = {"servers": block.servers}
    if block.balance != "round_robin":
        group["balance"] = block.balance
    group["max_fails"], group["fail_timeout"] = block.max_fails, block.fail_timeout
    return group


def _names_itself(value: str) -> bool:
    """A value built from the client's own name and nothing else variable (`$ssl_preread_server_name:443`)."""
    rest = _SERVER_NAME_VARIABLE.sub("", value)
    return rest != value and "$" not in rest and ":" in rest


def _on(directive: Directive | None) -> bool:
    return directive is not None and directive.args == ["on"]


def _merge_runs(pending: list[_PendingRoute]) -> list[_PendingRoute]:
    """Join neighbouring entries that differ only in their names; order (and so regex order) is kept."""
    merged: list[_PendingRoute] = []
    for route in pending:
        previous = merged[-1] if merged else None
        same = previous is not None and "description" not in route.fields and "description" not in previous.fields \
            and {k: v for k, v in previous.fields.items() if k != "sni"} == {k: v for k, v in route.fields.items() if k != "sni"} \
            and "$" not in route.fields["upstream"]
        if same:
            previous.fields["sni"] = previous.fields["sni"] + route.fields["sni"]
            previous.origins += route.origins
        else:
            merged.append(_PendingRoute(dict(route.fields), list(route.origins)))
    return merged


def _evaluate_map(map_: Map, name: str) -> str | None:
    """The value nginx's map gives `name`, by sniui's (= nginx's hostnames) precedence."""
    from sniui.config.models import Route

    routes = []
    for index, entry in enumerate(map_.entries):
        try:
            parse_pattern(entry.key)
        except ValueError:
            continue
        routes.append(Route(name=str(index), sni=[entry.key], upstream="127.0.0.1:1"))
    decision = RouteTable(Config(routes=routes)).match(name)
    if decision.action == "route":
        return map_.entries[int(decision.route)].value  # type: ignore[arg-type]
    return map_.default


def _dump(data: dict[str, Any]) -> str:
    import yaml

    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=False, width=120)


def _generated_tests(config: Config) -> list[dict[str, Any]]:
    table = RouteTable(config)
    tests = []
    for route in config.routes:
        for pattern in route.patterns:
            if pattern.kind is not PatternKind.EXACT:
                continue
            decision = table.match(pattern.key)
            tests.append({"sni": pattern.key, "expect": decision.upstream if decision.action == "route" else "reject"})
    return tests


def import_nginx_parsed(parsed: ParsedConfig, *, base_dir: Path, assume_hostnames: bool = False) -> ImportResult:
    findings: list[Finding] = []
    stream = read_stream(parsed, findings)
    importer = _Importer(stream, findings, assume_hostnames=assume_hostnames, base_dir=base_dir)
    data = importer.convert()
    config = importer.finish(data, parsed.files[0], len(parsed.comments))
    header = (f"# Imported from {parsed.files[0]} by `sniui import nginx`.\n"
              f"# {len(importer.findings)} finding(s) were reported on stderr; `sniui check -c FILE` runs the tests below.\n")
    return ImportResult(config, header + to_yaml(config), importer.findings)


def import_nginx(path: str | Path, *, assume_hostnames: bool = False) -> ImportResult:
    """Read an nginx config file (following includes) and convert its stream block."""
    path = Path(path)
    return import_nginx_parsed(parse_file(path), base_dir=path.resolve().parent, assume_hostnames=assume_hostnames)


def import_nginx_text(text: str, *, file: str = "<nginx>", base_dir: Path | None = None,
                      assume_hostnames: bool = False) -> ImportResult:
    base_dir = base_dir or Path.cwd()
    return import_nginx_parsed(parse_text(text, file, base_dir=base_dir), base_dir=base_dir, assume_hostnames=assume_hostnames)
