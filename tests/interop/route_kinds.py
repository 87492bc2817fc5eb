"""A sniui config holding every kind of route, shared by the export, round-trip and real-peer tests.

`UPSTREAMS` names the upstream each route leads to; the config places each one
at an address the caller chooses, so the real-peer test can put small TLS
servers there that answer with their name.
"""

from __future__ import annotations

import yaml

# Identity → what it stands for. "pool" is a group of two servers that both answer "pool".
UPSTREAMS = ("exact", "pool", "wild", "deep", "dot", "trail", "regex", "tmpl", "fallback", "terminated")

# (client name or None for no SNI, identity sniui should pick, kind of route that decides it)
PROBES: list[tuple[str | None, str, str]] = [
    ("exact.test", "exact", "exact"),
    ("shop.wild.test", "exact", "exact beats a wildcard"),
    ("shop.test", "pool", "exact → group"),
    ("a.wild.test", "wild", "leading wildcard"),
    ("a.b.c.wild.test", "wild", "leading wildcard, any depth"),
    ("x.deep.wild.test", "deep", "longest leading wildcard"),
    ("dot.test", "dot", ".a.b includes a.b"),
    ("x.y.dot.test", "dot", ".a.b below"),
    ("www.trail.com", "trail", "trailing wildcard"),
    ("www.trail.co.uk", "trail", "trailing wildcard, two labels"),
    ("re-abc.test", "regex", "regex"),
    ("pool.grp.test", "pool", "regex $1 → group name"),
    ("nosuch.grp.test", "reject", "regex $1 → no such group → reject"),
    ("port-99999.tmpl.test", "reject", "regex template → port out of range → reject"),
    ("secure.test", "terminated", "terminating route"),
    ("unknown.example", "fallback", "default"),
    (None, "reject", "no SNI → reject"),
]


def every_kind_config(addresses: dict[str, str], *, listen: str, tmpl_port: int, certificate: str,
                      client_hello: str = "5s") -> str:
    """YAML for a config with every route kind; `addresses[identity]` is host:port (pool: two, comma-separated)."""
    pool = addresses["pool"].split(",")
    data = {
        "listen": [{"address": listen}],
        "timeouts": {"client_hello": client_hello, "connect": "2s", "idle": "30s"},
        "upstreams": {"pool": {"servers": pool, "balance": "round_robin"}},
        "certificates": {"secure": {"cert": certificate, "key": certificate}},
        "routes": [
            {"name": "exact", "sni": ["exact.test", "shop.wild.test"], "upstream": addresses["exact"],
             "description": "exact names beat wildcards"},
            {"name": "shop", "sni": "shop.test", "upstream": "pool"},
            {"name": "wild", "sni": "*.wild.test", "upstream": addresses["wild"]},
            {"name": "deep", "sni": "*.deep.wild.test", "upstream": addresses["deep"]},
            {"name": "dot", "sni": ".dot.test", "upstream": addresses["dot"]},
            {"name": "trail", "sni": "www.trail.*", "upstream": addresses["trail"]},
            {"name": "regex", "sni": "~^re-[a-z]+\\.test$", "upstream": addresses["regex"]},
            # Templates render to loopback ports and group names: a real peer cannot reach
            # made-up hostnames, and these are the shapes that still prove capture rendering.
            {"name": "tmpl", "sni": "~^port-(?<port>\\d+)\\.tmpl\\.test$", "upstream": "127.0.0.1:$port"},
            {"name": "grp", "sni": "~^(\\w+)\\.grp\\.test$", "upstream": "$1"},
            {"name": "secure", "sni": "secure.test", "mode": "terminate", "certificate": "secure",
             "upstream": addresses["terminated"]},
        ],
        "default": {"action": "route", "upstream": addresses["fallback"]},
        "no_sni": {"action": "reject", "reject_with": "close"},
    }
    probes = [(name, identity) for name, identity, _ in PROBES] + [(f"port-{tmpl_port}.tmpl.test", "tmpl")]
    lookup = {identity: address for identity, address in addresses.items()}
    data["tests"] = [
        {"sni": name, "expect": "reject" if identity == "reject" else ("pool" if identity == "pool" else lookup[identity])}
        for name, identity in probes
    ]
    return yaml.safe_dump(data, sort_keys=False)
