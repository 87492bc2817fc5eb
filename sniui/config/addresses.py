"""`host:port` and server-name syntax shared by the config and the router.

Rendered upstreams come from client-controlled server names (regex captures), so
this module is the gate that keeps a client from steering a route anywhere it
likes: only a DNS hostname or an IP literal and a port in 1-65535 get through.
"""

from __future__ import annotations

import ipaddress
import re
from typing import NamedTuple

import idna

_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")


class HostPort(NamedTuple):
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def is_valid_hostname(host: str) -> bool:
    """A DNS name of LDH labels (underscore tolerated, as in service names)."""
    if not host or len(host) > 253:
        return False
    labels = host.rstrip(".").split(".") if host != "." else []
    return bool(labels) and all(_LABEL.match(label) for label in labels)


def is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


# The shape nearly every upstream has; checked first because rendered templates
# are parsed once per connection.
_PLAIN_HOST_PORT = re.compile(r"^((?:(?!-)[a-z0-9_-]{1,63}(?<!-)\.)*(?!-)[a-z0-9_-]{1,63}(?<!-)):([0-9]{1,5})$")


def parse_host_port(text: str, *, default_port: int | None = None) -> HostPort:
    """Parse `host:port`, `1.2.3.4:443` or `[::1]:443`; raise ValueError with the reason."""
    m = _PLAIN_HOST_PORT.match(text) if isinstance(text, str) and len(text) <= 259 else None
    if m is not None and 1 <= (port := int(m.group(2))) <= 65535 and len(m.group(1)) <= 253:
        return HostPort(m.group(1), port)
    if not isinstance(text, str) or not text:
        raise ValueError("expected host:port")
    bad = sorted({c for c in text if c.isspace() or c in "/@?#\\\"'"})
    if bad:
        shown = ", ".join(repr(c) for c in bad)
        raise ValueError(f"{text!r} contains {shown}, which cannot appear in host:port")
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep:
            raise ValueError(f"{text!r}: missing ']' after an IPv6 address")
        if not is_ip_literal(host) or ":" not in host:
            raise ValueError(f"{text!r}: {host!r} is not an IPv6 address")
        port_text = rest[1:] if rest.startswith(":") else None
        if rest and not rest.startswith(":"):
            raise ValueError(f"{text!r}: expected ':port' after ']'")
    else:
        if text.count(":") > 1:
            raise ValueError(f"{text!r}: write IPv6 addresses in brackets, e.g. [::1]:443")
        host, sep, port_text = text.partition(":")
        if not sep:
            port_text = None
        if not host:
            raise ValueError(f"{text!r}: missing host before ':'")
        if not (is_ip_literal(host) or is_valid_hostname(host.lower())):
            raise ValueError(f"{text!r}: {host!r} is not a valid hostname or IP address")
        host = host.lower()
    if port_text is None:
        if default_port is None:
            raise ValueError(f"{text!r}: missing ':port'")
        return HostPort(host, default_port)
    if not port_text.isdigit():
        raise ValueError(f"{text!r}: port {port_text!r} is not a number")
    port = int(port_text)
    if not 1 <= port <= 65535:
        raise ValueError(f"{text!r}: port {port} is outside 1-65535")
    return HostPort(host, port)


def parse_listen_address(text: str) -> HostPort:
    """Like parse_host_port, but `*:443`/`:443` mean all IPv4 addresses and port 0 is allowed."""
    if isinstance(text, int) or (isinstance(text, str) and text.isdigit()):
        return parse_listen_address(f"0.0.0.0:{text}")
    if isinstance(text, str) and (text.startswith("*:") or text.startswith(":")):
        text = "0.0.0.0:" + text.split(":", 1)[1]
    if isinstance(text, str) and text.endswith(":0"):
        host = parse_host_port(text[:-2] + ":1").host
        return HostPort(host, 0)
    return parse_host_port(text)


def normalize_server_name(name: str) -> str:
    """The form names are compared in: lowercased, one trailing dot removed, IDN as xn--."""
    name = name.strip().lower()
    if name.endswith("."):
        name = name[:-1]
    if name.isascii():
        return name
    return to_ascii_name(name)


def to_ascii_name(name: str) -> str:
    """Convert an internationalised name (or pattern) to its `xn--` form label by label.

    Wildcard labels (`*`, empty leading label of `.a.b`) pass through untouched.
    """
    out = []
    for label in name.split("."):
        if not label or label == "*" or label.isascii():
            out.append(label.lower())
            continue
        try:
            out.append(idna.encode(label, uts46=True).decode("ascii"))
        except idna.IDNAError as exc:
            raise ValueError(f"{label!r} is not a valid internationalised label: {exc}") from None
    return ".".join(out)
