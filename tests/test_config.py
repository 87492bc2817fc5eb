"""Config errors are reported with the file, the line and the field path."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from sniui.config import ConfigError, load_file, load_text, save_config
from sniui.config.units import parse_duration, parse_size

GOOD = textwrap.dedent("""\
    listen:
      - address: "127.0.0.1:8443"
      - address: "[::1]:8443"
    timeouts:
      client_hello: 500ms
      connect: 1s
      idle: 10m
    upstreams:
      web:
        servers: ["10.0.0.1:443", "10.0.0.2:443"]
        balance: least_conn
    certificates:
      example:
        cert: certs/example.pem
        key: certs/example.key
    routes:
      - name: shop
        sni: shop.example.com
        upstream: web
      - sni: ["*.apps.example.com", ".example.org"]
        upstream: "apps.internal:443"
      - sni: "~^(?<app>.+)-(?<ns>.+)-(?<port>\\\\d+)\\\\.k8s\\\\.example\\\\.com$"
        upstream: "$app-public.$ns.svc.cluster.local:$port"
        allow: ["*.svc.cluster.local:443", "*.svc.cluster.local:8000-8999"]
      - sni: api.example.com
        mode: terminate
        certificate: example
        upstream: "127.0.0.1:8080"
        proxy_protocol: v2
        allow_clients: ["10.0.0.0/8", "::1"]
    default:
      action: reject
      reject_with: close
    limits:
      max_client_hello: 16KiB
    tests:
      - sni: shop-staging-8080.k8s.example.com
        expect: shop-public.staging.svc.cluster.local:8080
""")


def errors_of(text: str, file: str = "sniui.yaml") -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_text(text, file=file)
    return [str(issue) for issue in info.value.errors]


def test_the_documented_example_loads_with_units_parsed():
    config = load_text(GOOD).config
    assert config.timeouts.client_hello == 0.5
    assert config.timeouts.idle == 600
    assert config.limits.max_client_hello == 16384
    assert config.routes[1].sni == ["*.apps.example.com", ".example.org"]
    assert config.default.reject_with == "close"
    assert [listener.host_port.port for listener in config.listen] == [8443, 8443]


@pytest.mark.parametrize(
    ("needle", "replacement", "expected"),
    [
        # unknown upstream group, with a suggestion
        ("upstream: web", "upstream: wbe", "sniui.yaml:19 routes[0].upstream: unknown upstream group 'wbe' (did you mean 'web'?)"),
        # misspelt field
        ("    upstream: web\n", "    upstrem: web\n", "sniui.yaml:19 routes[0].upstrem: unknown field 'upstrem' (did you mean 'upstream'?)"),
        # regex that does not compile
        ("(?<port>\\\\d+)", "(?<port>\\\\d+", "sniui.yaml:22 routes[2].sni[0]: regex"),
        # template naming a group the regex does not have
        ("$ns.svc", "$nss.svc", "sniui.yaml:23 routes[2].upstream: $nss is not a capture of regex"),
        # terminate without a certificate
        ("    certificate: example\n", "", "sniui.yaml:25 routes[3].certificate: mode: terminate needs a certificate"),
        # unknown certificate
        ("certificate: example", "certificate: exmaple", "sniui.yaml:27 routes[3].certificate: unknown certificate 'exmaple' (did you mean 'example'?)"),
        # port out of range
        ('"127.0.0.1:8080"', '"127.0.0.1:80800"', "sniui.yaml:28 routes[3].upstream: '127.0.0.1:80800': port 80800 is outside 1-65535"),
        # duration that does not parse
        ("connect: 1s", "connect: 1 fortnight", "sniui.yaml:6 timeouts.connect: '1 fortnight' is not a duration"),
        # bad CIDR
        ('"10.0.0.0/8"', '"10.0.0.0/33"', "sniui.yaml:30 routes[3].allow_clients[0]: '10.0.0.0/33' is not an address or CIDR range"),
        # default routing without an upstream
        ("  action: reject\n", "  action: route\n", "sniui.yaml:31 default.upstream: default.action: route needs an upstream"),
        # balance that does not exist
        ("balance: least_conn", "balance: fastest", "sniui.yaml:11 upstreams.web.balance: Input should be 'round_robin', 'least_conn' or 'source_hash'"),
        # server without a port
        ('"10.0.0.2:443"', '"10.0.0.2"', "sniui.yaml:10 upstreams.web.servers[1]: '10.0.0.2': missing ':port'"),
        # wildcard in the middle of a name
        ('"*.apps.example.com"', '"apps.*.example.com"', "sniui.yaml:20 routes[1].sni[0]: 'apps.*.example.com': '*' may only stand as the first label"),
        # listener address that is not host:port
        ('"[::1]:8443"', '"[::1:8443"', "sniui.yaml:3 listen[1].address: '[::1:8443': missing ']'"),
        # allow entry that is not host:port
        ('"*.svc.cluster.local:443"', '"*.svc.cluster.local"', "sniui.yaml:24 routes[2].allow[0]: '*.svc.cluster.local': write it as host-glob:port"),
        # size too small
        ("max_client_hello: 16KiB", "max_client_hello: 100", "sniui.yaml:35 limits.max_client_hello: Input should be greater than or equal to 1024"),
    ],
)
def test_each_mistake_names_file_line_and_field(needle, replacement, expected):
    assert needle in GOOD, needle
    errors = errors_of(GOOD.replace(needle, replacement, 1))
    assert any(e.startswith(expected) for e in errors), errors


def test_duplicate_route_names_and_patterns_are_refused():
    text = textwrap.dedent("""\
        routes:
          - {name: a, sni: x.example.com, upstream: "h:1"}
          - {name: a, sni: y.example.com, upstream: "h:2"}
          - {sni: X.Example.com., upstream: "h:3"}
          - {sni: "*.example.com", upstream: "h:4"}
          - {sni: ".example.com", upstream: "h:5"}
    """)
    errors = errors_of(text)
    assert "sniui.yaml:3 routes[1].name: route name 'a' is already used by routes[0]" in errors
    assert any(e.startswith("sniui.yaml:4 routes[2].sni[0]: 'X.Example.com.' is already routed by routes[0].sni[0]") for e in errors)
    assert any(e.startswith("sniui.yaml:6 routes[4].sni[0]: '.example.com' is already routed by routes[3].sni[0]") for e in errors)


def test_template_captures_need_a_regex_and_numbered_groups_must_exist():
    errors = errors_of(textwrap.dedent("""\
        routes:
          - sni: plain.example.com
            upstream: "$app:443"
          - sni: "~^(a)(b)$"
            upstream: "h$3:443"
    """))
    assert any("routes[0].upstream" in e and "not a regex" in e for e in errors), errors
    assert any(e.startswith("sniui.yaml:5 routes[1].upstream: $3: regex") for e in errors), errors


def test_yaml_syntax_errors_and_duplicate_keys_are_located():
    assert errors_of("routes:\n  - sni: a\n   upstream: [\n")[0].startswith("sniui.yaml:3")
    errors = errors_of("timeouts:\n  connect: 1s\n  connect: 2s\n")
    assert errors == ["sniui.yaml:3: key 'connect' appears twice (first at line 2); YAML would silently keep only the last"]


def test_every_error_is_reported_at_once():
    text = GOOD.replace("upstream: web", "upstream: wbe").replace("$ns.svc", "$nss.svc")
    assert len(errors_of(text)) == 2


def test_durations_and_sizes():
    assert parse_duration("500ms") == 0.5
    assert parse_duration("5s") == 5
    assert parse_duration("10m") == 600
    assert parse_duration(3) == 3
    assert parse_size("16KiB") == 16384
    assert parse_size("1MiB") == 1 << 20
    for bad in ("5 s s", "-1s", "fast", True):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_idn_patterns_become_punycode():
    config = load_text("routes:\n  - {sni: bücher.example, upstream: 'h:1'}\n").config
    assert config.routes[0].patterns[0].key == "xn--bcher-kva.example"


def test_relative_paths_are_anchored_at_the_config_file(tmp_path: Path):
    (tmp_path / "conf").mkdir()
    path = tmp_path / "conf" / "sniui.yaml"
    path.write_text(GOOD)
    config = load_file(path).config
    assert config.path_of(config.certificates["example"].cert) == tmp_path / "conf" / "certs" / "example.pem"


def test_unreadable_file_is_a_clear_error(tmp_path: Path):
    with pytest.raises(ConfigError) as info:
        load_file(tmp_path / "missing.yaml")
    assert "missing.yaml: cannot read" in str(info.value)


def test_save_is_atomic_keeps_a_backup_and_round_trips(tmp_path: Path):
    path = tmp_path / "sniui.yaml"
    path.write_text(GOOD)
    os.chmod(path, 0o640)
    loaded = load_file(path)
    config = loaded.config.model_copy(update={"routes": loaded.config.routes[:2]})
    backup = save_config(config, path)
    assert backup is not None and backup.read_text() == GOOD
    assert oct(path.stat().st_mode & 0o777) == "0o640"
    again = load_file(path).config
    assert [r.sni for r in again.routes] == [r.sni for r in config.routes]
    assert again.timeouts == config.timeouts
    assert again.upstreams == config.upstreams
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_a_server_listed_twice_in_a_group_is_refused():
    errors = errors_of("upstreams:\n  web:\n    servers:\n      - 10.0.0.1:443\n      - 10.0.0.1:443\n")
    assert errors == ["sniui.yaml:5 upstreams.web.servers[1]: 10.0.0.1:443 is already listed at servers[0]; list each server once"]
