"""sniui routes → an HAProxy config, with findings for what HAProxy cannot do the same way.

The shape written (documented in the README's "Coming from nginx"):

    defaults            mode tcp, timeouts
    frontend sniui      every listener; wait for the ClientHello (inspect-delay +
                        req.ssl_hello_type 1); then one `use_backend … if { req.ssl_sni … }`
                        per pattern kind in sniui's precedence: no SNI, exact names,
                        `.a.b` base names, leading wildcards longest first (-m end),
                        trailing wildcards longest first (-m reg, HAProxy has no
                        trailing-wildcard match), regexes in file order (-m reg);
                        default_backend for the rest
    backend be_…        one per upstream group / host:port (and PROXY version)
    backend sniui_terminate_N + frontend sniui_terminate_N
                        a terminating route: the name is passed over loopback with a
                        PROXY v2 header to a frontend that terminates TLS (so it still
                        sees the real client), then to the route's upstream
    backend sniui_reject      `tcp-request content reject`

HAProxy compares `req.ssl_sni` lowercased and without a trailing dot (kept in
`txn.sni`), like sniui. It cannot
resolve a host name rendered from captures: such routes are sent to
sniui_reject, with a finding, so their names are not taken by a later rule
instead. Templates naming a group, or a literal IP with a captured port, are
rendered (see `template_rules`).
"""

from __future__ import annotations

import re

from sniui.config.addresses import is_ip_literal, parse_host_port
from sniui.config.models import Config, Fallback, Route, classify_upstream
from sniui.config.patterns import Pattern, PatternKind, parse_pattern
from sniui.config.templates import parse_template
from sniui.config.units import format_duration
from sniui.interop import ExportResult, Finding

REJECT_BACKEND = "sniui_reject"
# The name as sniui compares it (lowercased, one trailing dot dropped), set once the hello is in.
SNI = "var(txn.sni)"
SNI_EXPRESSION = r"req.ssl_sni,lower,regsub('\.$','')"
# A decimal port in 1-65535, as sniui accepts in a rendered upstream.
_PORT_RANGE = "'^0*([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])$'"
_BALANCE = {"round_robin": "roundrobin", "least_conn": "leastconn", "source_hash": "source"}


def _backend_name(upstream: str, proxy_protocol: str | None) -> str:
    name = "be_" + re.sub(r"[^A-Za-z0-9_.:-]", "", upstream)
    return name + (f"_pp{proxy_protocol[1:]}" if proxy_protocol else "")


def _hap_word(text: str) -> str:
    """A config word HAProxy reads back unchanged: single quotes keep `$`, `\\`, `#` and spaces literal."""
    if re.fullmatch(r"[A-Za-z0-9_.:*/-]+", text):
        return text
    return "'" + text + "'"


def _trailing_regex(pattern: Pattern) -> str:
    # `www.a.*`: the prefix, a dot, and at least one more character (sniui drops a final dot).
    return "^" + re.escape(pattern.key) + r"\.."


class _HaproxyExporter:
    def __init__(self, config: Config, *, internal_host: str, internal_port_base: int, source: str | None):
        self.config = config
        self.internal_host = internal_host
        self.internal_port_base = internal_port_base
        self.source = source or config.source or "the sniui config"
        self.findings: list[Finding] = []
        self.labels = config.route_labels()
        self.backends: dict[str, list[str]] = {}    # name → body lines, in first-use order
        self.terminators: list[list[str]] = []
        self.reject_used = False
        self.next_internal_port = internal_port_base
        self.captures: list[str] = []                # set-var rules for templates, run before `accept`

    def warn(self, message: str) -> None:
        self.findings.append(Finding(message, self.source))

    # -- backends ----------------------------------------------------------------

    def backend_for(self, upstream: str, proxy_protocol: str | None) -> str:
        name = _backend_name(upstream, proxy_protocol)
        if name in self.backends:
            return name
        send = {"v1": " send-proxy", "v2": " send-proxy-v2"}.get(proxy_protocol or "", "")
        group = self.config.upstreams.get(upstream)
        if group is not None:
            body = [f"balance {_BALANCE[group.balance]}"]
            # HAProxy checks servers actively; sniui (like nginx) marks them down after max_fails failures.
            check = f" check fall {group.max_fails} inter {format_duration(group.fail_timeout)}" if group.max_fails else ""
            for position, server in enumerate(group.servers, 1):
                body.append(f"server {upstream}-{position} {server}{check}{send}")
        else:
            body = [f"server s1 {upstream}{send}"]
        self.backends[name] = body
        return name

    def reject(self) -> str:
        self.reject_used = True
        return REJECT_BACKEND

    def route_backend(self, index: int, route: Route) -> str:
        if route.mode == "terminate":
            return self.terminator(index, route)
        if classify_upstream(route.upstream) == "template":
            return ""   # decided per pattern by template_rules()
        return self.backend_for(route.upstream, route.proxy_protocol)

    # -- templates ----------------------------------------------------------------------

    def template_rules(self, index: int, position: int, pattern: Pattern, route: Route, acl: str) -> list[str]:
        """Rules rendering a template as sniui does, for the two shapes HAProxy can follow.

        - a group name (`$1`): the capture is copied into a variable and picks the
          backend by name (`use_backend be_%[var(...)]`);
        - a literal IP and a captured port (`127.0.0.1:$port`): a backend rewrites
          the destination port (`set-dst-port`) and connects to `0.0.0.0:0`, which
          HAProxy reads as "the rewritten destination".

        A rendered value sniui would refuse (an unknown group, a port outside
        1-65535) is rejected by a final rule, so the name never reaches a later one.
        Anything else (a captured host name needs DNS at run time) is rejected, with a finding.
        """
        label = self.labels[index]
        template = route.template
        host_text, colon, port_text = route.upstream.rpartition(":")
        variable = f"txn.route{index}_{position}"
        pp = {"v1": "_pp1", "v2": "_pp2"}.get(route.proxy_protocol or "", "")
        reject = f"use_backend {self.reject()} if {acl}  # {label}: a rendered upstream sniui would refuse"
        if any(c in pattern.key for c in "'\"") or any(isinstance(r, int) and r > 9 for r in template.references):
            return self._template_unsupported(label, route, acl, "the regex holds a quote or a group beyond $9")
        if not colon:
            if any(_backend_name(group, None) != "be_" + group for group in self.config.upstreams):
                return self._template_unsupported(label, route, acl, "a group name needs characters HAProxy backend names lack")
            for group in self.config.upstreams:
                self.backend_for(group, route.proxy_protocol)
            self.captures.append(self._capture(variable, pattern, route.upstream))
            groups = " ".join(self.config.upstreams) or "sniui-no-groups"
            return [f"use_backend be_%[var({variable})]{pp} if {acl} {{ var({variable}) -m str {groups} }}  # {label}", reject]
        if "$" in host_text or not is_ip_literal(host_text.strip("[]")):
            return self._template_unsupported(label, route, acl, "HAProxy cannot resolve a rendered host name per connection")
        self.captures.append(self._capture(variable, pattern, port_text))
        backend = f"sniui_route_{index}_{position}"
        host = host_text.strip("[]")
        address = f"ipv6({host})" if ":" in host else f"ipv4({host})"
        send = {"v1": " send-proxy", "v2": " send-proxy-v2"}.get(route.proxy_protocol or "", "")
        self.backends[backend] = [
            f"tcp-request content set-dst {address}",
            f"tcp-request content set-dst-port var({variable})",
            f"server rendered 0.0.0.0:0{send}",
        ]
        return [f"use_backend {backend} if {acl} {{ var({variable}) -m reg {_PORT_RANGE} }}  # {label}", reject]

    def _capture(self, variable: str, pattern: Pattern, template_text: str) -> str:
        """A rule copying the rendered template into `variable` once the hello is in."""
        subst = []
        for segment in parse_template(template_text).segments:
            if isinstance(segment, int):
                subst.append(f"\\{segment}")
            elif segment.startswith("$"):
                subst.append(f"\\{pattern.regex.groupindex[segment[1:]]}")  # type: ignore[union-attr]
            else:
                subst.append(segment)
        flags = ",i" if pattern.text.startswith("~*") else ""
        # The regex must consume the whole name so that only the substitution remains.
        expression = f'var(txn.sni),regsub("^.*?(?:{pattern.key}).*$","{"".join(subst)}"{flags})'
        return f"tcp-request content set-var({variable}) '{expression}' if {{ req.ssl_hello_type 1 }}"

    def _template_unsupported(self, label: str, route: Route, acl: str, why: str) -> list[str]:
        self.warn(f"route {label!r}: HAProxy cannot render {route.upstream} ({why}); its names go to {REJECT_BACKEND} instead")
        return [f"use_backend {self.reject()} if {acl}  # {label}"]

    def terminator(self, index: int, route: Route) -> str:
        label = self.labels[index]
        taken = {listener.host_port.port for listener in self.config.listen}
        port = self.next_internal_port
        while port in taken:
            port += 1
        self.next_internal_port = port + 1
        address = f"{self.internal_host}:{port}"
        name = f"sniui_terminate_{index}"
        self.backends[name] = [f"server {name} {address} send-proxy-v2"]
        if classify_upstream(route.upstream) == "template":
            self.warn(f"route {label!r}: HAProxy cannot render regex captures into an upstream ({route.upstream}); "
                      f"its names are terminated and then rejected")
            inner_backend = self.reject()
        else:
            inner_backend = self.backend_for(route.upstream, route.proxy_protocol)
        certificate = self.config.certificates.get(route.certificate or "")
        bind = f"bind {address} accept-proxy ssl"
        if certificate is not None:
            cert = str(self.config.path_of(certificate.cert))
            key = str(self.config.path_of(certificate.key))
            bind += f" crt {_hap_word(cert)}"
            if key not in (cert, cert + ".key"):
                self.warn(f"route {label!r}: HAProxy reads the key from the certificate file or from {cert}.key; "
                          f"put {key} there (or append it to the certificate)")
        bind += " ssl-min-ver TLSv1.3" if route.min_version == "1.3" else " ssl-min-ver TLSv1.2"
        if route.client_ca:
            bind += f" ca-file {_hap_word(str(self.config.path_of(route.client_ca)))} verify required"
        if route.alpn:
            bind += " alpn " + ",".join(route.alpn)
        self.terminators.append([
            f"# route {label!r}: mode terminate",
            f"frontend {name}",
            f"    {bind}",
            f"    default_backend {inner_backend}",
        ])
        return name

    def fallback_backend(self, fallback: Fallback, name: str) -> str:
        if fallback.action == "reject":
            if fallback.reject_with != "close":
                self.warn(f"{name}: reject_with {fallback.reject_with}: HAProxy closes the connection instead")
            return self.reject()
        return self.backend_for(fallback.upstream or "", fallback.proxy_protocol)

    # -- the frontend --------------------------------------------------------------

    def rules(self) -> list[str]:
        config = self.config
        rules: list[str] = []
        if config.no_sni is not None:
            rules.append("# no_sni: the client sent no server name")
            rules.append(f"use_backend {self.fallback_backend(config.no_sni, 'no_sni')} if !{{ {SNI} -m found }}")
        exact: list[tuple[int, Pattern]] = []
        base: list[tuple[int, Pattern]] = []
        below: list[tuple[int, Pattern]] = []
        trailing: list[tuple[int, Pattern]] = []
        regexes: list[tuple[int, Pattern]] = []
        for index, route in enumerate(config.routes):
            for text in route.sni:
                pattern = parse_pattern(text)
                if pattern.kind is PatternKind.EXACT:
                    exact.append((index, pattern))
                elif pattern.kind is PatternKind.LEADING_WILDCARD:
                    below.append((index, pattern))
                    if pattern.includes_base:
                        base.append((index, pattern))
                elif pattern.kind is PatternKind.TRAILING_WILDCARD:
                    trailing.append((index, pattern))
                    self.warn(f"route {self.labels[index]!r}: HAProxy has no trailing-wildcard match; {text!r} is "
                              f"exported as the regex {_trailing_regex(pattern)}, which matches the same names")
                else:
                    regexes.append((index, pattern))
        backends = {index: self.route_backend(index, route) for index, route in enumerate(config.routes)}
        # Longest wildcard first: sorted() keeps file order among equals, as sniui does.
        below.sort(key=lambda item: -item[1].specificity)
        trailing.sort(key=lambda item: -item[1].specificity)
        sections = [
            ("exact names", exact, lambda p: f"{SNI} -m str {_hap_word(p.key)}"),
            ("names of .a.b patterns", base, lambda p: f"{SNI} -m str {_hap_word(p.key)}"),
            ("leading wildcards, longest first", below, lambda p: f"{SNI} -m end {_hap_word('.' + p.key)}"),
            ("trailing wildcards, longest first", trailing, lambda p: f"{SNI} -m reg {_hap_word(_trailing_regex(p))}"),
            ("regexes in file order", regexes, self._regex_condition),
        ]
        for title, items, condition in sections:
            if not items:
                continue
            rules.append(f"# {title}")
            for index, pattern in items:
                acl = "{ " + condition(pattern) + " }"
                route = config.routes[index]
                if route.allow_clients:
                    sources = " ".join(route.allow_clients)
                    rules.append(f"use_backend {self.reject()} if {acl} !{{ src {sources} }}")
                if route.mode == "passthrough" and classify_upstream(route.upstream) == "template":
                    rules += self.template_rules(index, route.sni.index(pattern.text), pattern, route, acl)
                    continue
                rules.append(f"use_backend {backends[index]} if {acl}  # {self.labels[index]}")
        for index, route in enumerate(config.routes):
            if route.allow:
                self.warn(f"route {self.labels[index]!r}: allow (the bound on rendered upstreams) has no HAProxy equivalent")
        return rules

    def _regex_condition(self, pattern: Pattern) -> str:
        source = pattern.key
        if "'" in source:
            self.warn(f"regex {pattern.text!r} contains a single quote, which this export cannot quote for HAProxy")
        flag = " -i" if pattern.text.startswith("~*") else ""
        return f"{SNI} -m reg{flag} {_hap_word(source)}"

    def run(self) -> str:
        config = self.config
        timeouts = config.timeouts
        rules = self.rules()
        default = self.fallback_backend(config.default, "default")
        out = [
            f"# Generated by `sniui export haproxy` from {self.source}.",
            "# Precedence follows sniui (and nginx's map hostnames): exact, .a.b, longest *.a.b,",
            "# longest www.a.*, regexes in file order, default.",
        ]
        if config.resolver.nameservers:
            out += ["resolvers sniui"]
            for position, nameserver in enumerate(config.resolver.nameservers, 1):
                out.append(f"    nameserver ns{position} {parse_host_port(nameserver, default_port=53)}")
            out += [f"    hold valid {format_duration(config.resolver.cache_ttl)}", ""]
        resolvers = " resolvers sniui" if config.resolver.nameservers else ""
        out += [
            "defaults",
            "    mode tcp",
            f"    timeout connect {format_duration(timeouts.connect)}",
            f"    timeout client {format_duration(timeouts.idle)}",
            f"    timeout server {format_duration(timeouts.idle)}",
            # Start even when a server's name does not resolve yet, as sniui does.
            f"    default-server init-addr last,libc,none{resolvers}",
            "",
            "frontend sniui",
        ]
        for listener in config.listen:
            out.append(f"    bind {listener.address}{' accept-proxy' if listener.accept_proxy_protocol else ''}")
        out += [
            f"    maxconn {config.limits.max_connections}",
            f"    tcp-request inspect-delay {format_duration(timeouts.client_hello)}",
            f"    tcp-request content set-var(txn.sni) {SNI_EXPRESSION} if {{ req.ssl_hello_type 1 }}",
            *["    " + capture for capture in self.captures],
            "    tcp-request content accept if { req.ssl_hello_type 1 }",
            "    # not a ClientHello within the delay: refused, as sniui does",
            "    tcp-request content reject",
        ]
        out += ["    " + rule for rule in rules]
        out += [f"    default_backend {default}", ""]
        if "max_connections_per_client" in config.limits.model_fields_set:
            self.warn("limits.max_connections_per_client: not exported (HAProxy needs a stick table for it)")
        for lines in self.terminators:
            out += lines + [""]
        for name, body in self.backends.items():
            out.append(f"backend {name}")
            out += ["    " + line for line in body]
            out.append("")
        if self.reject_used:
            out += [f"backend {REJECT_BACKEND}", "    tcp-request content reject", ""]
        return "\n".join(out)


def export_haproxy(config: Config, *, internal_host: str = "127.0.0.1", internal_port_base: int = 10443,
                   source: str | None = None) -> ExportResult:
    """HAProxy config text for `config`. Terminating routes listen on internal_host from internal_port_base up."""
    exporter = _HaproxyExporter(config, internal_host=internal_host, internal_port_base=internal_port_base, source=source)
    text = exporter.run()
    return ExportResult(text, exporter.findings)
