"""`sniui export nginx|haproxy`: the text written, the findings, precedence, and import(export(config)) round trips."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sniui.commands.interop import run_export
from sniui.config import load_text
from sniui.config.patterns import compile_regex
from sniui.interop.haproxy_export import export_haproxy
from sniui.interop.nginx_export import export_nginx, quote
from sniui.interop.nginx_import import import_nginx_text
from sniui.interop.nginx_parser import tokenize
from sniui.routing import RouteTable
from tests.interop.route_kinds import PROBES, every_kind_config

ADDRESSES = {
    "exact": "10.0.0.1:443", "pool": "10.0.1.1:443,10.0.1.2:443", "wild": "10.0.0.3:443", "deep": "10.0.0.4:443",
    "dot": "10.0.0.5:443", "trail": "10.0.0.6:443", "regex": "10.0.0.7:443", "tmpl": "127.0.0.1:9100",
    "fallback": "10.0.0.9:443", "terminated": "127.0.0.1:8080",
}
EXTRA_NAMES = ["SHOP.TEST.", "port-9100.tmpl.test", "x.www.trail.com", "re-.test", "wild.test", "a.grp.test"]


@pytest.fixture
def config():
    text = every_kind_config(ADDRESSES, listen="0.0.0.0:8443", tmpl_port=9100, certificate="/etc/sniui/secure.pem")
    return load_text(text, base_dir=Path("/etc/sniui")).config


def changed(model, changes: dict):
    # Validated afresh: model_copy would keep the old model's cached patterns.
    return type(model).model_validate({**model.model_dump(), **changes})


def decisions(config, names):
    table = RouteTable(config)
    out = {}
    for name in names:
        d = table.match(name)
        certificate = config.certificates[d.certificate].cert if d.certificate else None
        out[name] = (d.action, d.upstream, d.mode, certificate)
    return out


def all_names(config):
    return [name for name, _, _ in PROBES] + [t.sni for t in config.tests] + EXTRA_NAMES


# --- nginx ------------------------------------------------------------------------------


def test_nginx_text_has_every_part(config):
    text = export_nginx(config).text
    for line in [
        "map $ssl_preread_server_name $sniui_upstream {", "hostnames;", "default 10.0.0.9:443;",
        '"" sniui_reject;', "exact.test 127.0.0.1:10443;".replace("127.0.0.1:10443", "10.0.0.1:443"),
        "*.wild.test 10.0.0.3:443;", ".dot.test 10.0.0.5:443;", "www.trail.* 10.0.0.6:443;",
        r'"~*^re-[a-z]+\.test$" 10.0.0.7:443;', r'"~*^port-(?<port>\d+)\.tmpl\.test$" 127.0.0.1:$port;',
        "upstream pool {", "server 10.0.1.1:443 max_fails=1 fail_timeout=10s;", "upstream sniui_reject {",
        "server 127.0.0.1:1 down;", "listen 0.0.0.0:8443;", "ssl_preread on;", "preread_timeout 5s;",
        "proxy_connect_timeout 2s;", "proxy_timeout 30s;", "proxy_pass $sniui_upstream;",
        "secure.test 127.0.0.1:10443;", "listen 127.0.0.1:10443 ssl;", "ssl_certificate /etc/sniui/secure.pem;",
        "ssl_protocols TLSv1.2 TLSv1.3;", "proxy_pass 127.0.0.1:8080;",
    ]:
        assert line in text, line
    assert "exact.test 10.0.0.1:443;  # exact names beat wildcards" in text


def test_nginx_terminating_route_with_template_gets_a_map_on_ssl_server_name(config):
    config.routes[-1] = changed(config.routes[-1], {"sni": ["~^(?<svc>[a-z]+)\\.secure\\.test$"], "upstream": "127.0.0.1:$svc"})
    text = export_nginx(config).text
    assert "proxy_pass $sniui_terminated_9;" in text
    assert "map $ssl_server_name $sniui_terminated_9 {" in text


def test_nginx_findings_for_what_nginx_sets_per_server(config):
    routes = config.routes
    routes[1] = changed(routes[1], {"proxy_protocol": "v2", "allow_clients": ["10.0.0.0/8"]})
    routes[7] = changed(routes[7], {"allow": ["127.0.0.1:9000-9999"]})
    routes[6] = changed(routes[6], {"upstream": "regex.internal:443"})
    findings = [f.message for f in export_nginx(config).findings]
    assert any("'shop': proxy_protocol v2 not exported" in m for m in findings)
    assert any("'shop': allow_clients not exported" in m for m in findings)
    assert any("'tmpl': allow (the bound" in m for m in findings)
    assert any("'regex': nginx resolves regex.internal:443 at run time" in m for m in findings)
    assert not any("'tmpl': nginx resolves" in m for m in findings)   # 127.0.0.1:$port needs no DNS


def test_nginx_proxy_protocol_when_every_route_agrees(config):
    config.routes = [changed(r, {"proxy_protocol": "v1"}) for r in config.routes if r.mode == "passthrough"]
    config.default = changed(config.default, {"proxy_protocol": "v1"})
    result = export_nginx(config)
    assert "        proxy_protocol on;\n        proxy_pass $sniui_upstream;" in result.text
    assert not [f for f in result.findings if "proxy_protocol" in f.message]


@pytest.mark.parametrize("text", ["plain", "~^a\\d+$", 'say "hi"', "a\\\\b", "x;y{z}", "tab\\tend", "", "#hash", "~*^x"])
def test_quote_reads_back_through_nginx_tokenizer(text):
    assert [t.text for t in tokenize(quote(text) + ";") if t.kind == "word"] == [text]


@pytest.mark.parametrize("names", [["default"], ["hostnames", "include"]])
def test_nginx_map_parameter_names_round_trip_as_names(names):
    config = load_text(f"routes:\n  - sni: {names}\n    upstream: 10.0.0.1:443\n").config
    back = import_nginx_text(export_nginx(config).text).config
    assert [r.sni for r in back.routes] == [names]


# --- round trip -----------------------------------------------------------------------


def test_import_of_nginx_export_decides_every_name_like_the_original(config):
    exported = export_nginx(config)
    back = import_nginx_text(exported.text, file="exported.conf")
    names = all_names(config)
    assert decisions(back.config, names) == decisions(config, names)
    assert decisions(back.config, [None]) == decisions(config, [None])
    assert back.config.timeouts == config.timeouts
    assert back.config.upstreams == config.upstreams
    assert [l.address for l in back.config.listen] == ["0.0.0.0:8443"]


def test_round_trip_keeps_terminating_route_settings(config):
    secure = config.routes[-1].model_copy(update={
        "client_ca": "/etc/sniui/clients.pem", "min_version": "1.3", "alpn": ["h2", "http/1.1"], "proxy_protocol": "v1",
    })
    config.routes[-1] = secure
    back = import_nginx_text(export_nginx(config).text).config
    imported = next(r for r in back.routes if r.mode == "terminate")
    assert (imported.client_ca, imported.min_version, imported.alpn, imported.proxy_protocol) == \
        ("/etc/sniui/clients.pem", "1.3", ["h2", "http/1.1"], "v1")


def test_round_trip_of_a_terminating_template_route(config):
    config.routes[-1] = changed(config.routes[-1], {"sni": ["~^(?<svc>[a-z]+)\\.secure\\.test$"], "upstream": "$svc"})
    config.upstreams["api"] = config.upstreams["pool"]
    back = import_nginx_text(export_nginx(config).text).config
    names = ["api.secure.test", "pool.secure.test", "x.y.secure.test"]
    assert decisions(back, names) == decisions(config, names)
    assert RouteTable(back).match("api.secure.test").mode == "terminate"


# --- HAProxy -------------------------------------------------------------------------------


def test_haproxy_text_has_every_part(config):
    text = export_haproxy(config).text
    for line in [
        "mode tcp", "timeout connect 2s", "timeout client 30s", "timeout server 30s", "frontend sniui",
        "bind 0.0.0.0:8443", "tcp-request inspect-delay 5s", "tcp-request content accept if { req.ssl_hello_type 1 }",
        "use_backend sniui_reject if !{ var(txn.sni) -m found }",
        "tcp-request content set-var(txn.sni) req.ssl_sni,lower,regsub('\\.$','') if { req.ssl_hello_type 1 }",
        "use_backend be_10.0.0.1:443 if { var(txn.sni) -m str exact.test }",
        "use_backend be_10.0.0.3:443 if { var(txn.sni) -m end .wild.test }",
        "use_backend be_10.0.0.6:443 if { var(txn.sni) -m reg '^www\\.trail\\..' }",
        "use_backend be_10.0.0.7:443 if { var(txn.sni) -m reg '^re-[a-z]+\\.test$' }",
        "default_backend be_10.0.0.9:443", "backend be_pool", "balance roundrobin",
        "server pool-1 10.0.1.1:443 check fall 1 inter 10s", "backend sniui_reject", "tcp-request content reject",
        "bind 127.0.0.1:10443 accept-proxy ssl crt /etc/sniui/secure.pem ssl-min-ver TLSv1.2",
        "server sniui_terminate_9 127.0.0.1:10443 send-proxy-v2", "default_backend be_127.0.0.1:8080",
    ]:
        assert line in text, line


def test_haproxy_renders_group_and_port_templates(config):
    text = export_haproxy(config).text
    capture = ("tcp-request content set-var(txn.route7_0) "
               "'var(txn.sni),regsub(\"^.*?(?:^port-(?<port>\\d+)\\.tmpl\\.test$).*$\",\"\\1\")' if { req.ssl_hello_type 1 }")
    assert capture in text
    assert text.index(capture) < text.index("tcp-request content accept")   # `accept` ends the content rules
    assert "use_backend be_%[var(txn.route8_0)] if { var(txn.sni) -m reg '^(\\w+)\\.grp\\.test$' } { var(txn.route8_0) -m str pool }" in text
    assert "backend sniui_route_7_0\n    tcp-request content set-dst ipv4(127.0.0.1)\n    tcp-request content set-dst-port var(txn.route7_0)\n    server rendered 0.0.0.0:0\n" in text


def test_haproxy_findings_for_host_templates_and_trailing_wildcards(config):
    config.routes[7] = changed(config.routes[7], {"upstream": "$port.tmpl.internal:443"})
    result = export_haproxy(config)
    findings = [f.message for f in result.findings]
    assert any("'tmpl': HAProxy cannot render $port.tmpl.internal:443 (HAProxy cannot resolve" in m for m in findings)
    assert "use_backend sniui_reject if { var(txn.sni) -m reg '^port-(?<port>\\d+)\\.tmpl\\.test$' }  # tmpl" in result.text
    assert any("'trail': HAProxy has no trailing-wildcard match" in m for m in findings)


def test_haproxy_send_proxy_versions_get_their_own_backends(config):
    config.routes[1] = changed(config.routes[1], {"proxy_protocol": "v2"})
    config.routes[2] = changed(config.routes[2], {"proxy_protocol": "v1"})
    text = export_haproxy(config).text
    assert "backend be_pool_pp2\n    balance roundrobin\n    server pool-1 10.0.1.1:443 check fall 1 inter 10s send-proxy-v2" in text
    assert "server s1 10.0.0.3:443 send-proxy\n" in text


def test_haproxy_allow_clients_rejects_other_sources_first(config):
    config.routes[0] = changed(config.routes[0], {"allow_clients": ["10.0.0.0/8"]})
    text = export_haproxy(config).text
    reject = "use_backend sniui_reject if { var(txn.sni) -m str exact.test } !{ src 10.0.0.0/8 }"
    assert text.index(reject) < text.index("use_backend be_10.0.0.1:443 if { var(txn.sni) -m str exact.test }")


def _haproxy_decide(text: str, name: str | None) -> str:
    """Walk the frontend's rules as HAProxy would (only the matchers and converters the export writes)."""
    frontend = text.split("frontend sniui\n", 1)[1].split("\n\n", 1)[0]
    variables = {"txn.sni": name.lower().removesuffix(".")} if name is not None else {}
    for line in frontend.splitlines():
        line = line.split("  #", 1)[0].strip()
        capture = re.match(r"""tcp-request content set-var\((txn\.route\w+)\) 'var\(txn\.sni\),regsub\("(.*)","(.*)"\)'""", line)
        if capture and name is not None:
            variable, regex, subst = capture.groups()
            python_subst = re.sub(r"\\(\d)", r"\\g<\1>", subst)
            variables[variable] = compile_regex(regex, ignore_case=False).sub(python_subst, variables["txn.sni"], count=1)
        if line.startswith("default_backend "):
            return line.split()[1]
        m = re.match(r"use_backend (\S+) if (!?)\{ (.*?) \}(.*)$", line)
        if not m:
            continue
        backend, negate, acl, rest = m.groups()
        if rest.strip().startswith("!{ src"):
            continue   # a source check: the probes come from an allowed address
        hit = _acl(acl, variables) != bool(negate)
        if hit and rest.strip():
            hit = _acl(rest.strip()[2:-2], variables)
        if hit:
            return re.sub(r"%\[var\(([\w.]+)\)\]", lambda v: variables[v.group(1)], backend)
    raise AssertionError("no default_backend")


def _acl(acl: str, variables: dict[str, str]) -> bool:
    variable, matcher, value = re.match(r"var\(([\w.]+)\) -m (\w+)(?: -i)? ?(.*)$", acl).groups()
    if matcher == "found":
        return variable in variables
    if variable not in variables:
        return False
    sample = variables[variable]
    if matcher == "str":
        return sample in value.split()
    if matcher == "end":
        return sample.endswith(value)
    return compile_regex(value.strip("'"), ignore_case=False).search(sample) is not None


def test_haproxy_rule_order_follows_sniui_precedence(config):
    text = export_haproxy(config).text
    table = RouteTable(config)
    for name in all_names(config) + [None]:
        decision = table.match(name)
        backend = _haproxy_decide(text, name)
        if decision.action == "reject":
            assert backend == "sniui_reject", name
        elif decision.target is not None and decision.target.upstream_kind == "template" and decision.upstream_group is None:
            assert backend == f"sniui_route_{decision.route_index}_0", name   # the port is rendered by set-dst-port
        elif decision.mode == "terminate":
            assert backend.startswith("sniui_terminate_"), name
        else:
            assert backend == "be_" + decision.upstream, name


# --- the command --------------------------------------------------------------------------


@pytest.mark.parametrize("kind, marker", [("nginx", "stream {"), ("haproxy", "frontend sniui")])
def test_run_export_writes_config_to_stdout_and_findings_to_stderr(tmp_path: Path, capsys, kind, marker):
    path = tmp_path / "sniui.yaml"
    text = every_kind_config(ADDRESSES, listen="0.0.0.0:8443", tmpl_port=9100, certificate="secure.pem")
    path.write_text(text.replace("reject_with: close", "reject_with: alert"))   # neither peer can send the alert
    assert run_export(kind, path, None) == 0
    out, err = capsys.readouterr()
    assert marker in out and "warning:" not in out
    assert f"{path}: warning: no_sni: reject_with alert" in err
    assert str(tmp_path / "secure.pem") in out    # relative paths are written absolute


def test_run_export_refuses_an_invalid_config(tmp_path: Path, capsys):
    path = tmp_path / "sniui.yaml"
    path.write_text("routes:\n  - sni: a.test\n    upstream: nowhere\n")
    assert run_export("nginx", path, str(tmp_path / "out.conf")) == 1
    assert "unknown upstream group" in capsys.readouterr().err
    assert not (tmp_path / "out.conf").exists()


def test_nginx_findings_for_v2_everywhere_uppercase_regex_and_limits():
    config = load_text(
        "routes:\n"
        "  - sni: '~^API-[a-z]+$'\n    upstream: 10.0.0.1:443\n    proxy_protocol: v2\n"
        "default:\n  action: route\n  upstream: 10.0.0.2:443\n  proxy_protocol: v2\n"
        "limits:\n  max_connections: 50\n"
    ).config
    result = export_nginx(config)
    findings = [f.message for f in result.findings]
    assert "proxy_protocol on;" in result.text
    assert any("nginx sends PROXY protocol v1 only" in m for m in findings)
    assert any("upper-case letters" in m for m in findings)
    assert any(m.startswith("limits: not exported") for m in findings)
    assert '"~*^API-[a-z]+$" 10.0.0.1:443;' in result.text


def test_run_import_of_a_missing_file(tmp_path: Path, capsys):
    from sniui.commands.interop import run_import

    assert run_import("nginx", tmp_path / "nope.conf", None) == 1
    assert "nope.conf: cannot read" in capsys.readouterr().err
