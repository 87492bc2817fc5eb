"""`sniui import nginx`: every construct, nginx's quirks, and every untranslated directive reported at file:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from sniui.commands.interop import run_import
from sniui.config import load_text
from sniui.interop.nginx_import import import_nginx, import_nginx_text
from sniui.routing import RouteTable

FULL = Path(__file__).parent / "fixtures" / "full" / "nginx.conf"


def decide(config, name):
    decision = RouteTable(config).match(name)
    return decision.upstream if decision.action == "route" else "reject"


def stream(body: str, server: str = "listen 443; ssl_preread on; proxy_pass $backend;") -> str:
    return f"stream {{\n{body}\nserver {{ {server} }}\n}}\n"


def messages(result) -> list[str]:
    return [str(f) for f in result.findings]


def finding_at(result, line: int, fragment: str) -> bool:
    return any(f.line == line and fragment in f.message for f in result.findings)


# --- the full fixture: a realistic config over several included files ---------------


@pytest.fixture(scope="module")
def full():
    return import_nginx(FULL)


def test_output_is_valid_sniui_yaml_with_generated_tests(full):
    assert full.yaml.endswith("\n")
    loaded = load_text(full.yaml, base_dir=FULL.parent)
    assert [(t.sni, t.expect) for t in loaded.config.tests] == [
        ("shop.example.com", "web"), ("blog.example.com", "web"), ("status.example.com", "web"),
        ("api.example.com", "127.0.0.1:8080"),
    ]


@pytest.mark.parametrize(
    "name, upstream",
    [
        ("shop.example.com", "web"),
        ("SHOP.Example.COM.", "web"),                       # lowercased, trailing dot dropped
        ("x.apps.example.com", "apps.internal:443"),
        ("a.b.apps.example.com", "apps.internal:443"),     # leading wildcard: any depth
        ("x.eu.apps.example.com", "apps-eu.internal:443"),  # the longest wildcard wins
        ("example.org", "org.internal:443"),               # .a.b includes a.b
        ("deep.sub.example.org", "org.internal:443"),
        ("www.example.net", "10.0.0.9:443"),                # trailing wildcard
        ("www.example.co.uk", "10.0.0.9:443"),
        ("shop-prod-8443.k8s.example.com", "shop-public.prod.svc.cluster.local:8443"),   # named captures
        ("alpha.num.example.com", "alpha.internal:443"),    # numbered capture
        ("legacy.example.net", "legacy"),                   # ~* regex, an upstream name
        ("api.example.com", "127.0.0.1:8080"),               # terminated by the chained server
        ("unknown.example.net", "web"),                     # default
    ],
)
def test_imported_routes_decide_like_nginx(full, name, upstream):
    assert decide(full.config, name) == upstream


def test_no_sni_comes_from_the_empty_key(full):
    assert RouteTable(full.config).match(None).upstream == "10.0.0.7:443"


def test_listeners_timeouts_and_resolver(full):
    config = full.config
    assert [(l.address, l.accept_proxy_protocol) for l in config.listen] == [("0.0.0.0:443", False), ("[::]:443", True)]
    assert (config.timeouts.client_hello, config.timeouts.connect, config.timeouts.idle) == (3.0, 2.0, 300.0)
    assert config.resolver.nameservers == ["10.0.0.53"] and config.resolver.cache_ttl == 60.0


def test_upstream_blocks_become_groups(full):
    web, legacy = full.config.upstreams["web"], full.config.upstreams["legacy"]
    assert web.servers == ["10.0.0.1:443", "10.0.0.2:443"]    # the backup server is left out
    assert (web.balance, web.max_fails, web.fail_timeout) == ("least_conn", 3, 30.0)
    assert legacy.servers == ["10.0.1.1:443", "10.0.1.3:443"]  # the down server is left out
    assert legacy.balance == "source_hash"


def test_terminating_server_reached_through_the_map_becomes_a_terminate_route(full):
    route = next(r for r in full.config.routes if r.sni == ["api.example.com"])
    assert route.mode == "terminate"
    assert route.upstream == "127.0.0.1:8080"
    assert route.min_version == "1.3"
    assert route.proxy_protocol == "v1"
    assert route.client_ca == str(FULL.parent.resolve() / "certs" / "clients-ca.pem")
    certificate = full.config.certificates[route.certificate]
    assert certificate.cert == str(FULL.parent.resolve() / "certs" / "api.pem")
    # The internal server is not a listener of its own.
    assert "127.0.0.1:10443" not in [l.address for l in full.config.listen]


def test_comments_on_entry_lines_become_descriptions_and_runs_merge(full):
    routes = full.config.routes
    assert routes[0].description == "the shop, two servers" and routes[0].sni == ["shop.example.com"]
    assert routes[1].sni == ["blog.example.com", "status.example.com"]   # same upstream, no comment: one route
    assert next(r for r in routes if r.sni == ["api.example.com"]).description == "terminated below"
    assert any("comment(s) not on a map entry line were dropped" in m for m in messages(full))


def test_every_untranslated_directive_is_reported_with_file_and_line(full):
    reported = {(Path(f.file).name, f.line) for f in full.findings if f.line}
    expected = {
        ("nginx.conf", 2),    # user
        ("nginx.conf", 3),    # worker_processes
        ("nginx.conf", 4),    # load_module
        ("nginx.conf", 6),    # events {}
        ("nginx.conf", 13),   # log_format
        ("nginx.conf", 21),   # access_log
        ("nginx.conf", 31),   # ssl_session_cache
        ("20-upstreams.conf", 2),    # zone
        ("20-upstreams.conf", 5),    # weight=2
        ("20-upstreams.conf", 6),    # backup
        ("20-upstreams.conf", 10),   # hash … consistent
        ("20-upstreams.conf", 12),   # down
    }
    assert expected <= reported, sorted(expected - reported)
    assert all(str(f).split(":")[0].endswith(".conf") for f in full.findings)


# --- nginx's map quirk: hostnames; -------------------------------------------------


NO_HOSTNAMES = """
map $ssl_preread_server_name $backend {
    default 10.0.0.1:443;
    exact.example.com   10.0.0.2:443;
    *.apps.example.com  10.0.0.3:443;
    .example.org        10.0.0.4:443;
}
"""


def test_without_hostnames_a_wildcard_key_is_a_literal_as_in_nginx():
    result = import_nginx_text(stream(NO_HOSTNAMES), file="nh.conf")
    config = result.config
    assert decide(config, "exact.example.com") == "10.0.0.2:443"
    assert decide(config, "x.apps.example.com") == "10.0.0.1:443"    # nginx: no match, the default
    assert decide(config, "example.org") == "10.0.0.1:443"
    assert decide(config, "*.apps.example.com") == "10.0.0.3:443"    # only the literal string matches
    assert finding_at(result, 6, "no `hostnames;`") and finding_at(result, 7, "no `hostnames;`")
    offer = next(f.message for f in result.findings if f.line == 6)
    assert "sni: '*.apps.example.com'" in offer   # the intended wildcard is offered


def test_assume_hostnames_imports_the_intended_wildcards():
    result = import_nginx_text(stream(NO_HOSTNAMES), file="nh.conf", assume_hostnames=True)
    assert decide(result.config, "x.apps.example.com") == "10.0.0.3:443"
    assert decide(result.config, "example.org") == "10.0.0.4:443"
    assert finding_at(result, 6, "as asked")


# --- map details ---------------------------------------------------------------------


def test_missing_default_and_empty_default_reject():
    for default in ("", 'default "";'):
        body = f"map $ssl_preread_server_name $backend {{ hostnames; {default} a.example.com 10.0.0.1:443; }}"
        config = import_nginx_text(stream(body)).config
        assert config.default.action == "reject"
        assert decide(config, "b.example.com") == "reject"


def test_escaped_parameter_name_is_a_literal_key():
    body = "map $ssl_preread_server_name $backend { hostnames; \\default 10.0.0.1:443; }"
    config = import_nginx_text(stream(body)).config
    assert config.routes[0].sni == ["default"]
    assert config.default.action == "reject"


def test_upstream_all_down_means_reject():
    body = """map $ssl_preread_server_name $backend { hostnames; default sniui_reject; a.example.com 10.0.0.1:443; }
              upstream sniui_reject { server 127.0.0.1:1 down; }"""
    result = import_nginx_text(stream(body))
    assert result.config.default.action == "reject"
    assert "sniui_reject" not in result.config.upstreams


@pytest.mark.parametrize(
    "entry, fragment",
    [
        ("a.example.com $remote_addr:443;", "not a regex"),
        ('"~^(?<app>.+)\\.example\\.com$" $app.$remote_addr:443;', "not a capture"),
        ("a.example.com nowhere;", "neither an upstream block nor host:port"),
        ("a.example.com unix:/run/x.sock;", "unix sockets"),
        ("a.example.com \"\";", "a sniui route cannot reject"),
        ("a*b.example.com 10.0.0.1:443;", "'*' may only stand"),
    ],
)
def test_entries_sniui_cannot_take_are_left_out_with_their_line(entry, fragment):
    body = f"map $ssl_preread_server_name $backend {{\n hostnames;\n {entry}\n ok.example.com 10.0.0.9:443;\n}}"
    result = import_nginx_text(stream(body), file="e.conf")
    assert finding_at(result, 4, fragment), messages(result)   # line 1 is `stream {`
    assert [r.sni for r in result.config.routes] == [["ok.example.com"]]


def test_conflicting_keys_are_reported_at_the_later_line():
    body = "map $ssl_preread_server_name $backend {\n hostnames;\n .a.example.com 10.0.0.1:443;\n *.a.example.com 10.0.0.2:443;\n}"
    result = import_nginx_text(stream(body), file="c.conf")
    assert finding_at(result, 5, "sniui refuses this entry")
    assert decide(result.config, "x.a.example.com") == "10.0.0.1:443"


# --- servers ------------------------------------------------------------------------


def test_terminating_server_with_maps_on_ssl_server_name(tmp_path: Path):
    text = """stream {
      map $ssl_server_name $upstream { hostnames; api.example.com 127.0.0.1:8080; *.admin.example.com 127.0.0.1:9090; }
      map $ssl_server_name $cert { hostnames; default certs/default.pem; *.admin.example.com certs/admin.pem; }
      map $ssl_server_name $key { hostnames; default certs/default.key; *.admin.example.com certs/admin.key; }
      server {
        listen 8443 ssl;
        ssl_certificate $cert;
        ssl_certificate_key $key;
        ssl_protocols TLSv1 TLSv1.2 TLSv1.3;
        ssl_alpn h2 http/1.1;
        proxy_pass $upstream;
      }
    }"""
    result = import_nginx_text(text, file="t.conf", base_dir=tmp_path)
    api, admin = result.config.routes
    assert (api.sni, api.mode, api.upstream, api.alpn) == (["api.example.com"], "terminate", "127.0.0.1:8080", ["h2", "http/1.1"])
    assert result.config.certificates[api.certificate].cert == str(tmp_path / "certs" / "default.pem")
    assert result.config.certificates[admin.certificate].key == str(tmp_path / "certs" / "admin.key")
    assert finding_at(result, 9, "below 1.2")
    assert result.config.listen[0].address == "0.0.0.0:8443"


def test_terminating_server_for_every_name_cannot_be_guessed():
    text = "stream { server { listen 8443 ssl; ssl_certificate a.pem; ssl_certificate_key a.key; proxy_pass 127.0.0.1:80; } }"
    result = import_nginx_text(text, file="t.conf")
    assert result.config.routes == []
    assert finding_at(result, 1, "terminates TLS for every name")


def test_literal_proxy_pass_is_the_default_route():
    result = import_nginx_text("stream { server { listen 443; ssl_preread on; proxy_pass 10.0.0.1:443; } }")
    assert result.config.default.action == "route" and result.config.default.upstream == "10.0.0.1:443"


def test_allow_then_deny_all_becomes_allow_clients():
    body = "map $ssl_preread_server_name $backend { hostnames; a.example.com 10.0.0.1:443; }"
    result = import_nginx_text(stream(body, "listen 443; ssl_preread on; allow 10.0.0.0/8; allow 192.168.0.0/16; deny all; proxy_pass $backend;"))
    assert result.config.routes[0].allow_clients == ["10.0.0.0/8", "192.168.0.0/16"]


def test_listen_variants_and_unsupported_listeners():
    text = """stream {
      map $ssl_preread_server_name $backend { hostnames; a.example.com 10.0.0.1:443; }
      server {
        listen 127.0.0.1:8443 reuseport;
        listen *:9443;
        listen 53 udp;
        listen unix:/run/sni.sock;
        ssl_preread on;
        tcp_nodelay on;
        proxy_pass $backend;
      }
      limit_conn_zone $binary_remote_addr zone=addr:10m;
    }"""
    result = import_nginx_text(text, file="l.conf")
    assert [l.address for l in result.config.listen] == ["127.0.0.1:8443", "0.0.0.0:9443"]
    for line, fragment in ((4, "reuseport"), (6, "udp"), (7, "unix sockets"), (9, "tcp_nodelay"), (12, "limit_conn_zone")):
        assert finding_at(result, line, fragment), (line, messages(result))


def test_two_servers_share_one_table_and_say_so():
    text = """stream {
      map $ssl_preread_server_name $a { hostnames; a.example.com 10.0.0.1:443; }
      map $ssl_preread_server_name $b { hostnames; b.example.com 10.0.0.2:443; }
      server { listen 443; ssl_preread on; proxy_pass $a; }
      server { listen 8443; ssl_preread on; proxy_pass $b; }
    }"""
    result = import_nginx_text(text, file="two.conf")
    assert [r.sni for r in result.config.routes] == [["a.example.com"], ["b.example.com"]]
    assert finding_at(result, 5, "merged")


# --- the command -----------------------------------------------------------------------


def test_run_import_writes_yaml_to_stdout_and_findings_to_stderr(capsys):
    assert run_import("nginx", FULL, None) == 0
    out, err = capsys.readouterr()
    assert load_text(out).config.routes
    assert "warning:" not in out
    assert "20-upstreams.conf:5: warning:" in err


def test_run_import_to_a_file(tmp_path: Path, capsys):
    target = tmp_path / "sniui.yaml"
    assert run_import("nginx", FULL, str(target)) == 0
    assert load_text(target.read_text()).config.routes
    assert "sniui check -c" in capsys.readouterr().err


def test_run_import_reports_nginx_syntax_errors_with_their_line(tmp_path: Path, capsys):
    bad = tmp_path / "bad.conf"
    bad.write_text("stream {\n  server {\n    listen 443\n  }\n}\n")
    assert run_import("nginx", bad, None) == 1
    assert f"{bad}:4:" in capsys.readouterr().err


def test_imported_config_passes_sniui_check(tmp_path: Path, capsys):
    import trustme

    from sniui.commands.check import run_check

    ca = trustme.CA()
    (tmp_path / "certs").mkdir()
    ca.issue_cert("api.example.com").private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "certs" / "api.pem"))
    ca.cert_pem.write_to_path(str(tmp_path / "certs" / "clients-ca.pem"))
    (tmp_path / "nginx.conf").write_text("""stream {
      map $ssl_preread_server_name $backend {
        hostnames;
        default 10.0.0.9:443;
        shop.example.com 10.0.0.1:443;
        *.apps.example.com 10.0.0.2:443;
        api.example.com 127.0.0.1:10443;
      }
      server { listen 443; ssl_preread on; proxy_pass $backend; }
      server {
        listen 127.0.0.1:10443 ssl;
        ssl_certificate certs/api.pem;
        ssl_certificate_key certs/api.pem;
        ssl_client_certificate certs/clients-ca.pem;
        ssl_verify_client on;
        proxy_pass 127.0.0.1:8080;
      }
    }""")
    target = tmp_path / "sniui.yaml"
    assert run_import("nginx", tmp_path / "nginx.conf", str(target)) == 0
    capsys.readouterr()
    assert run_check(target, as_json=True) == 0, capsys.readouterr()
    assert '"passed": true' in capsys.readouterr().out


def test_passthrough_proxy_protocol_and_optional_client_verification():
    text = """stream {
      map $ssl_preread_server_name $backend { hostnames; default 10.0.0.9:443; a.example.com 10.0.0.1:443; b.example.com 127.0.0.1:10443; }
      server { listen 443; ssl_preread on; proxy_protocol on; proxy_pass $backend; }
      server {
        listen 127.0.0.1:10443 ssl;
        ssl_certificate b.pem;
        ssl_certificate_key b.key;
        ssl_client_certificate ca.pem;
        ssl_verify_client optional;
        proxy_pass 127.0.0.1:8080;
      }
    }"""
    result = import_nginx_text(text, file="pp.conf", base_dir=Path("/etc/nginx"))
    a, b = result.config.routes
    assert a.proxy_protocol == "v1" and result.config.default.proxy_protocol == "v1"
    assert b.proxy_protocol is None   # the terminating server does not send one
    assert b.client_ca == "/etc/nginx/ca.pem"
    assert finding_at(result, 9, "ssl_verify_client optional: sniui requires the client certificate")


@pytest.mark.parametrize("where", ["proxy_pass", "map default"])
def test_proxy_pass_to_the_name_itself_becomes_a_catch_all_regex(where):
    if where == "proxy_pass":
        text = "stream {\n server { listen 443; ssl_preread on; proxy_pass $ssl_preread_server_name:443; }\n}"
        line = 2
    else:
        text = ("stream {\n map $ssl_preread_server_name $backend {\n  hostnames;\n  default ${ssl_preread_server_name}:8443;\n"
                "  a.example.com 10.0.0.1:443;\n }\n server { listen 443; ssl_preread on; proxy_pass $backend; }\n}")
        line = 4
    result = import_nginx_text(text, file="self.conf")
    port = "443" if where == "proxy_pass" else "8443"
    assert decide(result.config, "db.internal") == f"db.internal:{port}"
    assert RouteTable(result.config).match(None).action == "reject"
    assert finding_at(result, line, "lets any client reach any host")
    if where == "map default":
        assert decide(result.config, "a.example.com") == "10.0.0.1:443"
