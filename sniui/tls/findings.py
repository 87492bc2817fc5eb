"""Findings that relate routes to certificates.

`certificates.py` checks each certificate's own material (files, key, chain,
dates). This module checks what the routes ask of them: does the certificate
cover every name a terminating route serves, does a client CA hold CA
certificates, and can HTTP/2 connection coalescing carry one route's traffic
to another route's upstream.

Name coverage follows RFC 6125 as browsers apply it: a SAN `*.a.b` covers
exactly one label left of `a.b`, never `a.b` itself and never `x.y.a.b`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from cryptography import x509

from sniui.config.models import Config, Loc, Route, format_loc
from sniui.config.patterns import Pattern, PatternKind
from sniui.tls.contexts import offered_alpn

if TYPE_CHECKING:
    from sniui.tls.certificates import CertificateInfo

Severity = Literal["error", "warning"]


@dataclass(frozen=True, slots=True)
class CertFinding:
    """One problem with a certificate or with how a route uses it."""

    severity: Severity
    certificate: str | None   # the `certificates:` entry, if the finding concerns one
    route: str | None         # the route label, if the finding concerns a route
    file: str | None          # the certificate, key or CA file concerned
    loc: Loc                  # the config field to change, e.g. ("certificates", "web", "key")
    message: str
    fix: str                  # one line: what to do about it

    def __str__(self) -> str:
        field = format_loc(self.loc)
        return f"{field}: {self.severity}: {self.message} (fix: {self.fix})"

    def to_json(self) -> dict:
        return {
            "severity": self.severity, "certificate": self.certificate, "route": self.route,
            "file": self.file, "field": format_loc(self.loc), "message": self.message, "fix": self.fix,
        }


# -- names -----------------------------------------------------------------


def san_matches(san: str, name: str) -> bool:
    """Does a certificate name (exact or `*.a.b`) cover the server name `name`?"""
    if san == name:
        return True
    if san.startswith("*."):
        suffix = san[1:]
        label = name[: -len(suffix)] if name.endswith(suffix) else ""
        return bool(label) and "." not in label
    return False


def covers(sans: tuple[str, ...] | list[str], name: str) -> bool:
    return any(san_matches(san, name) for san in sans)


def _listing(names: tuple[str, ...] | list[str], limit: int = 6) -> str:
    if not names:
        return "none"
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


# -- route coverage ----------------------------------------------------------


def _coverage(index: int, label: str, route: Route, info: "CertificateInfo") -> list[CertFinding]:
    out: list[CertFinding] = []
    sans = info.sans
    their_names = f"certificate {info.name!r} lists {_listing(sans)}"
    if not sans:
        their_names = f"certificate {info.name!r} has no DNS subjectAltName (clients ignore the subject CN)"

    def finding(severity: Severity, j: int, message: str, fix: str) -> None:
        out.append(CertFinding(severity, info.name, label, str(info.cert_path), ("routes", index, "sni", j), message, fix))

    for j, pattern in enumerate(route.patterns):
        key = pattern.key
        if pattern.kind is PatternKind.EXACT:
            if not covers(sans, key):
                finding("error", j, f"{key} is not covered: {their_names}; clients will refuse the handshake",
                        f"add {key} to the certificate's subjectAltName, or give this route a certificate that lists it")
        elif pattern.kind is PatternKind.LEADING_WILDCARD:
            _leading_coverage(pattern, sans, their_names, lambda sev, msg, fix, j=j: finding(sev, j, msg, fix))
        elif pattern.kind is PatternKind.TRAILING_WILDCARD:
            matching = [s for s in sans if s.startswith(key + ".") or (s.startswith("*.") and "." not in key)]
            if not matching:
                finding("error", j, f"{pattern.text} matches names beginning {key}., and no name of the certificate does "
                        f"({their_names})", "list the names this route serves in the certificate, or change the route to those names")
            else:
                finding("warning", j, f"{pattern.text} matches {key}. under any domain; the certificate covers only "
                        f"{_listing(matching)}, so other names it routes here fail the handshake",
                        "replace the trailing wildcard with the exact names the certificate covers")
        else:
            finding("warning", j, f"regex {pattern.text} cannot be proven to be covered by the certificate; "
                    f"{their_names}, and names the regex matches outside these fail the handshake",
                    "check the names you route here with `sniui match NAME` against the certificate's names, "
                    "or route them with names or wildcards that sniui can check")
    return out


def _leading_coverage(pattern: Pattern, sans: tuple[str, ...], their_names: str, report) -> None:
    suffix = pattern.key
    if pattern.includes_base and not covers(sans, suffix):
        report("error", f"{pattern.text} also matches {suffix} itself, which is not covered: {their_names}",
               f"add {suffix} to the certificate's subjectAltName, or write the route as *.{suffix}")
    if f"*.{suffix}" not in sans:
        below = [s for s in sans if s.endswith("." + suffix)]
        detail = f"; it covers only {_listing(below)} below {suffix}" if below else ""
        report("error", f"{pattern.text} matches every name below {suffix}, but the certificate has no *.{suffix}"
               f"{detail} ({their_names})",
               f"use a certificate with *.{suffix} in its subjectAltName, or route only the names it lists")
        return
    # RFC 6125: the certificate's *.a.b is one label; nginx-style *.a.b is any depth.
    report("warning", f"{pattern.text} matches names at any depth below {suffix}, but the certificate's *.{suffix} "
           f"covers exactly one label (RFC 6125): x.{suffix} is covered, y.x.{suffix} is not and fails the handshake",
           f"if deeper names are served here, add them (or *.x.{suffix}) to the certificate; "
           f"if not, list the names the route serves instead of the wildcard")


# -- client CAs --------------------------------------------------------------


def _client_ca_problem(path: Path) -> tuple[str, str] | None:
    """(message, fix) when `path` is not a usable client-CA file, else None."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return f"client CA file {path} does not exist", "fix the path (relative paths are resolved against the config file's folder)"
    except OSError as exc:
        return f"client CA file {path} cannot be read: {exc.strerror or exc}", "make the file readable by the user sniui runs as"
    if b"-----BEGIN" not in data:
        return f"client CA file {path} is not PEM", "convert it: openssl x509 -inform der -in FILE -out FILE.pem"
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError:
        return f"client CA file {path} holds no readable certificate", "point client_ca at the PEM certificate of the CA that issues client certificates"
    for certificate in certificates:
        try:
            is_ca = certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        except x509.ExtensionNotFound:
            is_ca = False
        if not is_ca:
            subject = certificate.subject.rfc4514_string() or "(empty subject)"
            return (f"client CA file {path} holds {subject}, which is not a CA certificate (no basicConstraints CA:TRUE), "
                    "so no client certificate can be verified against it",
                    "point client_ca at the certificate of the CA that issues your client certificates")
    return None


def _client_ca(config: Config, index: int, label: str, route: Route, cache: dict[Path, tuple[str, str] | None]) -> list[CertFinding]:
    assert route.client_ca is not None
    path = config.path_of(route.client_ca)
    if path not in cache:
        cache[path] = _client_ca_problem(path)
    problem = cache[path]
    if problem is None:
        return []
    return [CertFinding("error", None, label, str(path), ("routes", index, "client_ca"), *problem)]


# -- HTTP/2 connection coalescing ------------------------------------------------

# A name no route is likely to list exactly, standing for "some name" under a
# wildcard SAN when asking the route table who would get it.
_PROBE_LABEL = "sniui-coalescing-probe"


def _names_the_certificate_covers(sans: tuple[str, ...], config: Config) -> dict[str, str]:
    """Concrete names to ask the route table about → how to show each one."""
    names: dict[str, str] = {}
    route_names = [p for route in config.routes for p in route.patterns if p.kind is not PatternKind.REGEX]
    for san in sans:
        if not san.startswith("*."):
            names.setdefault(san, san)
            continue
        suffix = san[2:]
        names.setdefault(f"{_PROBE_LABEL}.{suffix}", san)
        # Route names one label under the wildcard may go to a different route than the probe does.
        for pattern in route_names:
            candidate = pattern.key if pattern.kind is not PatternKind.TRAILING_WILDCARD else f"{pattern.key}.{suffix}"
            if san_matches(san, candidate):
                names.setdefault(candidate, candidate)
    return names


def _coalescing(config: Config, infos: dict[str, "CertificateInfo"]) -> list[CertFinding]:
    # The same decision function the engine uses, so "who gets this name" follows routing precedence.
    from sniui.routing.table import RouteTable

    table = RouteTable(config)
    labels = config.route_labels()
    out: list[CertFinding] = []
    for a, route in enumerate(config.routes):
        info = infos.get(route.certificate or "")
        if route.mode != "terminate" or info is None or "h2" not in offered_alpn(route) or not info.sans:
            continue
        reached: dict[int, list[str]] = {}
        for name, shown in _names_the_certificate_covers(info.sans, config).items():
            decision = table.match(name)
            b = decision.route_index
            if decision.action != "route" or b is None or b == a or config.routes[b].upstream == route.upstream:
                continue
            if shown not in reached.setdefault(b, []):
                reached[b].append(shown)
        for b, names in reached.items():
            other = config.routes[b]
            field = "alpn" if route.alpn is not None else "certificate"
            out.append(CertFinding(
                "warning", info.name, labels[a], str(info.cert_path), ("routes", a, field),
                f"route {labels[a]!r} offers h2 with certificate {info.name!r}, which also covers {_listing(names, 3)} "
                f"routed to {labels[b]!r} (upstream {other.upstream}); browsers reuse an HTTP/2 connection for every name "
                f"its certificate covers (connection coalescing), so requests for {labels[b]!r} can reach {route.upstream}",
                f"give {labels[a]!r} a certificate that does not cover the names of {labels[b]!r}, or set alpn: [http/1.1] on {labels[a]!r}",
            ))
    return out


# -- entry point -------------------------------------------------------------------


def route_findings(config: Config, infos: dict[str, "CertificateInfo"]) -> list[CertFinding]:
    """Coverage, client-CA and coalescing findings for the terminating routes of `config`.

    `infos` maps certificate names to what was loaded; certificates that did not
    load are skipped here (their own findings already say why).
    """
    out: list[CertFinding] = []
    labels = config.route_labels()
    ca_cache: dict[Path, tuple[str, str] | None] = {}
    for index, route in enumerate(config.routes):
        if route.mode != "terminate":
            continue
        info = infos.get(route.certificate or "")
        if info is not None and info.loaded:
            out += _coverage(index, labels[index], route, info)
        if route.client_ca:
            out += _client_ca(config, index, labels[index], route, ca_cache)
    out += _coalescing(config, {name: info for name, info in infos.items() if info.loaded})
    return out
