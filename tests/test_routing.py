"""Route precedence follows nginx `map { hostnames; }`; every decision explains itself."""

from __future__ import annotations

import textwrap

import pytest

from sniui.config import load_text
from sniui.routing import RouteTable


def table(routes_yaml: str, extra: str = "") -> RouteTable:
    text = "routes:\n" + textwrap.indent(textwrap.dedent(routes_yaml), "  ") + textwrap.dedent(extra)
    return RouteTable(load_text(text).config)


def upstream(t: RouteTable, name: str | None) -> str | None:
    decision = t.match(name)
    return decision.upstream if decision.action == "route" else "reject"


# Each pair of kinds, listed in the file in the order that would make the
# loser win if the file order mattered.
PRECEDENCE = table("""\
    - {sni: "~^www\\\\.", upstream: "regex-www:1"}
    - {sni: "www.example.*", upstream: "trailing-www-example:1"}
    - {sni: "www.*", upstream: "trailing-www:1"}
    - {sni: "*.com", upstream: "leading-com:1"}
    - {sni: "*.example.com", upstream: "leading-example-com:1"}
    - {sni: ".deep.example.com", upstream: "dot-deep:1"}
    - {sni: www.example.com, upstream: "exact:1"}
    - {sni: "~example", upstream: "regex-first:1"}
    - {sni: "~example\\\\.net$", upstream: "regex-second:1"}
""")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("www.example.com", "exact:1"),                         # exact beats every wildcard and regex
        ("api.example.com", "leading-example-com:1"),           # longer leading wildcard beats shorter
        ("a.b.example.com", "leading-example-com:1"),           # leading wildcard matches any depth
        ("other.com", "leading-com:1"),                         # the shorter one still catches the rest
        ("deep.example.com", "dot-deep:1"),                     # .a.b matches a.b itself ...
        ("x.y.deep.example.com", "dot-deep:1"),                 # ... and anything below
        ("www.example.org", "trailing-www-example:1"),          # longer trailing wildcard beats shorter
        ("www.other.org", "trailing-www:1"),                    # trailing beats a regex listed first
        ("www.example.net", "trailing-www-example:1"),          # trailing beats regexes
        ("mail.example.net", "regex-first:1"),                  # regexes in file order
        ("nothing.org", "reject"),                              # default rejects
    ],
)
def test_precedence(name, expected):
    assert upstream(PRECEDENCE, name) == expected


def test_leading_wildcard_beats_trailing_wildcard():
    t = table("""\
        - {sni: "www.example.*", upstream: "trailing:1"}
        - {sni: "*.example.com", upstream: "leading:1"}
    """)
    assert upstream(t, "www.example.com") == "leading:1"


def test_star_wildcard_does_not_match_its_base_name():
    t = table("""- {sni: "*.example.com", upstream: "leading:1"}\n""")
    assert upstream(t, "example.com") == "reject"


@pytest.mark.parametrize("name", ["WWW.Example.COM", "www.example.com.", "Www.Example.Com."])
def test_names_compare_lowercased_without_one_trailing_dot(name):
    assert upstream(PRECEDENCE, name) == "exact:1"


def test_internationalised_names_match_their_punycode_form():
    t = table("""- {sni: "bücher.example", upstream: "books:1"}\n""")
    assert upstream(t, "xn--bcher-kva.example") == "books:1"
    assert upstream(t, "BÜCHER.example") == "books:1"


def test_regex_searches_anywhere_unless_anchored_and_sees_lowercase():
    t = table("""\
        - {sni: "~staging", upstream: "staging:1"}
        - {sni: "~^API\\\\.", upstream: "never:1"}
        - {sni: "~*^API\\\\.", upstream: "api:1"}
    """)
    assert upstream(t, "app.staging.example.com") == "staging:1"
    assert upstream(t, "API.example.com") == "api:1"


K8S = """\
    - name: k8s
      sni: "~^(?<service>.+)-(?<namespace>.+)-(?<port>.+)$"
      upstream: "$service-public.$namespace.svc.cluster.local:$port"
"""


def test_seed_k8s_route_renders_and_refuses_invalid_renders():
    t = table(K8S)
    good = t.match("shop-staging-9999", explain=True)
    assert good.action == "route"
    assert good.upstream == "shop-public.staging.svc.cluster.local:9999"
    assert dict(good.captures) == {"service": "shop", "namespace": "staging", "port": "9999"}

    too_big = t.match("shop-staging-99999")
    assert too_big.action == "reject" and "port 99999 is outside 1-65535" in too_big.reject_reason

    slash = t.match("a-b-22/x")
    assert slash.action == "reject" and "'/'" in slash.reject_reason


@pytest.mark.parametrize("evil", ["a-b@evil.com-443", "a-b c-443", "a-evil.com:22#-443", "a--443"])
def test_a_client_cannot_steer_a_template_to_an_arbitrary_target(evil):
    assert table(K8S).match(evil).action == "reject"


def test_allow_list_bounds_rendered_upstreams():
    t = table(K8S.replace("  upstream:", '  allow: ["*.svc.cluster.local:443", "*.svc.cluster.local:8000-8999"]\n      upstream:'))
    assert t.match("shop-prod-443").action == "route"
    assert t.match("shop-prod-8500").action == "route"
    refused = t.match("shop-prod-22")
    assert refused.action == "reject" and "outside this route's allow list" in refused.reject_reason


def test_template_syntaxes_python_groups_and_unmatched_groups():
    t = table("""\
        - sni: "~^(?P<app>[a-z]+)(-(?<env>dev))?\\\\.example\\\\.com$"
          upstream: "${app}x$3.internal:$1"
    """.replace(":$1", ":443"))
    assert upstream(t, "shop.example.com") == "shopx.internal:443"       # $3 (env) did not take part: empty
    assert upstream(t, "shop-dev.example.com") == "shopxdev.internal:443"


def test_template_may_render_an_upstream_group_name():
    t = table("""\
        - {sni: "~^(?<env>prod|staging)\\\\.api\\\\.", upstream: "api-$env"}
    """, extra="""\
        upstreams:
          api-prod: {servers: ["127.0.0.1:1001"]}
          api-staging: {servers: ["127.0.0.1:1002"]}
    """)
    decision = t.match("prod.api.example.com")
    assert decision.upstream_group == "api-prod"


def test_no_sni_uses_no_sni_block_else_default():
    t = table("""- {sni: a.example, upstream: "a:1"}\n""", extra="""\
        default: {action: route, upstream: "fallback:443"}
    """)
    assert upstream(t, None) == "fallback:443"
    assert upstream(t, "zzz") == "fallback:443"
    t = table("""- {sni: a.example, upstream: "a:1"}\n""", extra="""\
        default: {action: route, upstream: "fallback:443"}
        no_sni: {action: reject, reject_with: reset}
    """)
    decision = t.match(None)
    assert decision.action == "reject" and decision.reject_with == "reset" and decision.route == "no_sni"


def test_explanation_lists_every_candidate_and_why_it_lost():
    decision = PRECEDENCE.match("www.example.com", explain=True)
    by_pattern = {c.pattern: c for c in decision.candidates}
    assert by_pattern["www.example.com"].won
    assert "exact names are consulted before" in by_pattern["*.example.com"].reason
    assert "exact names are consulted before" in by_pattern["www.example.*"].reason
    assert by_pattern["*.com"].matched and not by_pattern["*.com"].won
    assert by_pattern["~example\\.net$"].reason == "does not match"
    assert len(decision.candidates) == sum(len(r.patterns) for r in PRECEDENCE.routes)
    text = "\n".join(decision.explanation())
    assert "www.example.com → exact:1" in text

    shorter = PRECEDENCE.match("api.example.com", explain=True)
    loser = next(c for c in shorter.candidates if c.pattern == "*.com")
    assert "shorter (1 fixed labels) than the winner (2)" in loser.reason

    later_regex = PRECEDENCE.match("mail.example.net", explain=True)
    loser = next(c for c in later_regex.candidates if c.pattern == "~example\\.net$")
    assert "earlier regex" in loser.reason


def test_explain_does_not_change_the_decision():
    for name in ["www.example.com", "a.b.example.com", "www.other.org", "mail.example.net", "nothing.org"]:
        fast, explained = PRECEDENCE.match(name), PRECEDENCE.match(name, explain=True)
        assert (fast.action, fast.route, fast.upstream) == (explained.action, explained.route, explained.upstream)


def test_large_tables_route_correctly():
    routes = "".join(f'- {{sni: "host{i}.example.com", upstream: "h{i}:443"}}\n'
                     f'- {{sni: "*.zone{i}.example.com", upstream: "z{i}:443"}}\n' for i in range(2000))
    t = table(routes)
    assert upstream(t, "host1234.example.com") == "h1234:443"
    assert upstream(t, "a.b.zone1999.example.com") == "z1999:443"
    assert upstream(t, "zone7.example.com") == "reject"
