"""What an nginx `stream {}` block says, read from the directive tree that nginx_parser.py builds.

`read_stream` walks the parsed files (includes already followed) and returns
the maps, `upstream` blocks and `server` blocks, each keeping the directive it
came from, so every later finding can point at a file and line. A stream-level
setting that servers inherit is folded into each server's settings here, as
nginx does.

Reading raises its own findings (a directive nginx has and sniui does not, a
unix socket, an option without an equivalent) into the list it is given, so
they come out in the order the nginx files have them. Turning what was read
into a sniui config is nginx_import.py's job.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sniui.config.addresses import parse_host_port
from sniui.interop import Finding
from sniui.interop.nginx_parser import Directive, ParsedConfig

# Settings a stream-level directive gives every server that does not set its own.
INHERITED = {
    "proxy_connect_timeout", "proxy_timeout", "preread_timeout", "proxy_protocol", "resolver",
    "ssl_certificate", "ssl_certificate_key", "ssl_protocols", "ssl_client_certificate",
    "ssl_verify_client", "ssl_alpn",
}


@dataclass
class MapEntry:
    key: str
    value: str
    directive: Directive


@dataclass
class Map:
    source: str
    target: str
    hostnames: bool
    entries: list[MapEntry]
    default: str | None
    default_directive: Directive | None
    directive: Directive


@dataclass
class Listen:
    address: str
    ssl: bool
    proxy_protocol: bool
    directive: Directive


@dataclass
class Server:
    directive: Directive
    listens: list[Listen]
    settings: dict[str, Directive]      # effective: the server's own, else the stream's
    proxy_pass: Directive | None
    ssl_preread: bool
    allow_clients: list[str]

    @property
    def terminates(self) -> bool:
        return any(listen.ssl for listen in self.listens)


@dataclass
class UpstreamBlock:
    """An `upstream` block as sniui can use it: no servers means nginx closes every connection sent to it."""

    name: str
    servers: list[str]
    balance: str                   # "round_robin" | "least_conn" | "source_hash"
    max_fails: int                 # the first server's: sniui sets them per group
    fail_timeout: float
    directive: Directive


@dataclass
class NginxStream:
    maps: dict[str, Map]                    # by target variable
    upstreams: dict[str, UpstreamBlock]     # by name, in the order nginx first saw each name
    servers: list[Server]


def finding_at(message: str, where: Directive | None = None) -> Finding:
    return Finding(message, where.file if where else None, where.line if where else None)


def nginx_seconds(text: str, where: Directive, findings: list[Finding]) -> float | None:
    """An nginx time (`90s`, `1m30s`, `500ms`) in seconds; None, with a finding, when `text` is not one."""
    parts = re.findall(r"(\d+)(ms|s|m|h|d|w|M|y)?", text)
    if not parts or "".join(n + (u or "") for n, u in parts) != text:
        findings.append(finding_at(f"{text!r} is not an nginx time; ignored", where))
        return None
    units = {"ms": 0.001, "s": 1, "": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "M": 2592000, "y": 31536000}
    return sum(int(n) * units[u] for n, u in parts)


def read_stream(parsed: ParsedConfig, findings: list[Finding]) -> NginxStream:
    """The stream block(s) of `parsed`, or all of it when the file is itself a stream fragment."""
    return _StreamReader(findings).read(parsed)


class _StreamReader:
    def __init__(self, findings: list[Finding]):
        self.findings = findings

    def warn(self, message: str, where: Directive | None = None) -> None:
        self.findings.append(finding_at(message, where))

    def read(self, parsed: ParsedConfig) -> NginxStream:
        stream_blocks = [d for d in parsed.directives if d.name == "stream" and d.block is not None]
        if stream_blocks:
            for directive in parsed.directives:
                if directive.name == "stream":
                    continue
                if directive.block is not None:
                    self.warn(f"{directive.name} {{}} block not imported: sniui imports the stream block", directive)
                else:
                    self.warn(f"{directive.name}: main-context setting not translated (nginx process setting)", directive)
            body = [d for block in stream_blocks for d in block.block or []]
        else:
            # A file that is itself a stream fragment (an included maps/servers file).
            body = parsed.directives
        maps: dict[str, Map] = {}
        upstream_blocks: dict[str, Directive] = {}
        stream_settings: dict[str, Directive] = {}
        for directive in body:
            if directive.name == "map" and directive.block is not None:
                map_ = self._read_map(directive)
                if map_ is not None:
                    maps[map_.target] = map_
            elif directive.name == "upstream" and directive.block is not None and len(directive.args) == 1:
                upstream_blocks[directive.args[0]] = directive
            elif directive.name in INHERITED and directive.block is None:
                stream_settings[directive.name] = directive
            elif directive.name != "server":
                self.warn(f"{directive.name}: not translated", directive)
        upstreams = {name: self._read_upstream(name, directive) for name, directive in upstream_blocks.items()}
        servers = [self._read_server(directive, stream_settings)
                   for directive in body if directive.name == "server" and directive.block is not None]
        if not servers:
            self.warn("no stream server block found: nothing listens, so only maps and upstreams were imported")
        return NginxStream(maps, upstreams, servers)

    def _read_map(self, directive: Directive) -> Map | None:
        if len(directive.args) != 2:
            self.warn("map needs a source and a target variable; not translated", directive)
            return None
        source, target = directive.args
        entries: list[MapEntry] = []
        hostnames = False
        default = default_directive = None
        for entry in directive.block or []:
            if entry.name == "hostnames" and not entry.args:
                hostnames = True
            elif entry.name == "volatile" and not entry.args:
                self.warn("volatile: not needed, sniui evaluates routes per connection", entry)
            elif entry.name == "default" and len(entry.args) == 1:
                default, default_directive = entry.args[0], entry
            elif len(entry.args) != 1 or entry.block is not None:
                self.warn(f"map entry {entry.name!r} needs exactly one value; not translated", entry)
            else:
                key = entry.name[1:] if entry.name.startswith("\\") else entry.name   # `\default`: a literal key
                entries.append(MapEntry(key, entry.args[0], entry))
        return Map(source, target, hostnames, entries, default, default_directive, directive)

    def _read_upstream(self, name: str, directive: Directive) -> UpstreamBlock:
        servers: list[str] = []
        down: list[Directive] = []
        balance = "round_robin"
        fails: list[tuple[int, float]] = []
        for item in directive.block or []:
            if item.name == "server" and item.args:
                address, *options = item.args
                if address.startswith("unix:"):
                    self.warn(f"upstream {name}: unix socket {address} not supported by sniui; server left out", item)
                    continue
                try:
                    parse_host_port(address)
                except ValueError as exc:
                    self.warn(f"upstream {name}: {exc}; server left out", item)
                    continue
                max_fails, fail_timeout, skip = 1, 10.0, False
                for option in options:
                    opt, _, value = option.partition("=")
                    if opt == "down":
                        down.append(item)
                        skip = True
                    elif opt == "backup":
                        self.warn(f"upstream {name}: backup server {address} left out (sniui has no backup servers)", item)
                        skip = True
                    elif opt == "max_fails" and value.isdigit():
                        max_fails = int(value)
                    elif opt == "fail_timeout":
                        fail_timeout = nginx_seconds(value, item, self.findings) or fail_timeout
                    elif opt == "weight" and value == "1":
                        pass
                    else:
                        self.warn(f"upstream {name}: server option {option!r} not translated", item)
                if not skip:
                    servers.append(address)
                    fails.append((max_fails, fail_timeout))
            elif item.name == "least_conn" and not item.args:
                balance = "least_conn"
            elif item.name == "hash" and item.args:
                if item.args[0] in ("$remote_addr", "$binary_remote_addr"):
                    balance = "source_hash"
                    if "consistent" in item.args[1:]:
                        self.warn(f"upstream {name}: sniui's source_hash is a plain hash, not consistent hashing", item)
                else:
                    self.warn(f"upstream {name}: hash {item.args[0]} not translated (sniui hashes by client address only); round_robin used", item)
            elif item.name == "zone":
                self.warn(f"upstream {name}: zone not needed (sniui shares state in one process); left out", item)
            else:
                self.warn(f"upstream {name}: {item.name} not translated", item)
        if not servers:
            if down:
                # Every server down: nginx closes such connections (sniui's export writes reject this way).
                self.warn(f"upstream {name}: every server is marked down; names sent to it are rejected", directive)
            else:
                self.warn(f"upstream {name} has no usable server; routes to it are treated as reject", directive)
            return UpstreamBlock(name, [], balance, 1, 10.0, directive)
        for item in down:
            self.warn(f"upstream {name}: server {item.args[0]} is marked down; left out", item)
        if len(set(fails)) > 1:
            self.warn(f"upstream {name}: servers differ in max_fails/fail_timeout; sniui sets them per group, the first server's are used", directive)
        max_fails, fail_timeout = fails[0]
        return UpstreamBlock(name, servers, balance, max_fails, fail_timeout, directive)

    def _read_server(self, directive: Directive, stream_settings: dict[str, Directive]) -> Server:
        own: dict[str, Directive] = {}
        listens: list[Listen] = []
        allow: list[str] = []
        proxy_pass = None
        ssl_preread = False
        access_rules: list[Directive] = []
        # With `listen … proxy_protocol`, sniui always takes the client from the PROXY header,
        # which is what set_real_ip_from asks nginx to do.
        realip: list[Directive] = []
        for item in directive.block or []:
            if item.name == "listen" and item.args:
                listen = self._read_listen(item)
                if listen:
                    listens.append(listen)
            elif item.name == "ssl_preread":
                ssl_preread = item.args == ["on"]
            elif item.name == "proxy_pass" and len(item.args) == 1:
                proxy_pass = item
            elif item.name in ("allow", "deny") and len(item.args) == 1:
                access_rules.append(item)
            elif item.name == "set_real_ip_from":
                realip.append(item)
            elif item.name in INHERITED and item.block is None:
                own[item.name] = item
            else:
                self.warn(f"{item.name}: not translated", item)
        if access_rules:
            allow = self._read_access(access_rules)
        if realip and not any(listen.proxy_protocol for listen in listens):
            for item in realip:
                self.warn("set_real_ip_from without a `listen … proxy_protocol`: not translated", item)
        settings = {**stream_settings, **own}
        return Server(directive, listens, settings, proxy_pass, ssl_preread, allow)

    def _read_access(self, rules: list[Directive]) -> list[str]:
        # The one shape with a sniui equivalent: allow CIDR; … deny all;
        *allows, last = rules
        if last.name == "deny" and last.args == ["all"] and all(r.name == "allow" and r.args[0] != "all" for r in allows):
            return [r.args[0] for r in allows]
        for rule in rules:
            self.warn(f"{rule.name} {rule.args[0]}: only `allow CIDR; … deny all;` translates (to allow_clients); not translated", rule)
        return []

    def _read_listen(self, item: Directive) -> Listen | None:
        address, *flags = item.args
        if address.startswith("unix:"):
            self.warn(f"listen {address}: unix sockets not supported by sniui; listener left out", item)
            return None
        if "udp" in flags:
            self.warn(f"listen {address} udp: sniui routes TLS over TCP only; listener left out", item)
            return None
        if address.isdigit():
            address = f"0.0.0.0:{address}"
        elif address.startswith("*:"):
            address = "0.0.0.0:" + address[2:]
        elif ":" not in address or address.endswith("]"):
            # nginx: `listen 127.0.0.1` means port 80.
            address = f"{address}:80"
        for flag in flags:
            if flag not in ("ssl", "proxy_protocol"):
                self.warn(f"listen {address}: option {flag!r} not translated", item)
        return Listen(address, "ssl" in flags, "proxy_protocol" in flags, item)
