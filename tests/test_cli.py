"""`sniui check` and `sniui match` as a user runs them: a subprocess and its exit code."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

K8S_CONFIG = textwrap.dedent("""\
    upstreams:
      web: {servers: ["10.0.0.1:443"]}
    routes:
      - {name: shop, sni: shop.example.com, upstream: web}
      - name: k8s
        sni: "~^(?<service>.+)-(?<namespace>.+)-(?<port>.+)$"
        upstream: "$service-public.$namespace.svc.cluster.local:$port"
    tests:
      - {sni: shop-staging-9999, expect: shop-public.staging.svc.cluster.local:9999}
      - {sni: shop.example.com, expect: web}
      - {sni: unknown.example.net, expect: reject}
""")


def sniui(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sniui", *args], capture_output=True, text=True, timeout=60, cwd=cwd)


@pytest.fixture
def k8s_config(tmp_path: Path) -> Path:
    path = tmp_path / "sniui.yaml"
    path.write_text(K8S_CONFIG)
    return path


def test_match_renders_the_seed_k8s_route_and_refuses_bad_names(k8s_config: Path):
    result = sniui("match", "-c", str(k8s_config), "--json", "shop-staging-9999", "shop-staging-99999", "a-b-22/x", "-")
    assert result.returncode == 0, result.stderr
    good, big_port, slash, no_sni = json.loads(result.stdout)
    assert good["upstream"] == "shop-public.staging.svc.cluster.local:9999"
    assert good["captures"] == {"service": "shop", "namespace": "staging", "port": "9999"}
    assert big_port["action"] == "reject" and "99999" in big_port["reject_reason"]
    assert slash["action"] == "reject" and "'/'" in slash["reject_reason"]
    assert no_sni["sni"] is None and no_sni["action"] == "reject"


def test_match_human_output_explains_losers(k8s_config: Path):
    result = sniui("match", "-c", str(k8s_config), "shop.example.com")
    assert result.returncode == 0
    assert "shop.example.com → web" in result.stdout
    assert "does not match" in result.stdout


def test_check_passes_then_fails_when_an_expectation_breaks(k8s_config: Path):
    ok = sniui("check", "-c", str(k8s_config))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "3/3 passed" in ok.stdout

    k8s_config.write_text(K8S_CONFIG.replace("expect: web", "expect: reject"))
    broken = sniui("check", "-c", str(k8s_config), "--json")
    assert broken.returncode == 1
    report = json.loads(broken.stdout)
    failed = [t for t in report["tests"] if not t["passed"]]
    assert failed == [{"sni": "shop.example.com", "expect": "reject", "got": "web", "route": "shop",
                       "passed": False, "reason": None}]


def test_check_refuses_a_bad_config_with_file_line_field(k8s_config: Path):
    k8s_config.write_text(K8S_CONFIG.replace("upstream: web", "upstream: wbe"))
    result = sniui("check", "-c", str(k8s_config))
    assert result.returncode == 2
    assert f"{k8s_config}:4 routes[0].upstream: unknown upstream group 'wbe' (did you mean 'web'?)" in result.stderr


def test_default_config_is_sniui_yaml_in_the_current_folder(k8s_config: Path):
    result = sniui("match", "shop.example.com", cwd=k8s_config.parent)
    assert result.returncode == 0 and "→ web" in result.stdout
    missing = sniui("check", cwd=k8s_config.parent.parent)
    assert missing.returncode == 2 and "no config" in missing.stderr


def test_version():
    result = sniui("--version")
    assert result.returncode == 0 and result.stdout.startswith("sniui ")
