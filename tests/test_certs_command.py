"""`sniui certs -c FILE`, run as a user runs it: a subprocess, with exit codes."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import trustme

from sniui.config import load_file
from sniui.commands.certs import certificate_issues

REPO = Path(__file__).resolve().parents[1]

CONFIG = """\
    certificates:
      api:
        cert: certs/api.pem
        key: certs/api.key
    routes:
      - name: api
        sni: ["api.example.com", "www.example.com"]
        mode: terminate
        certificate: api
        upstream: "127.0.0.1:8080"
      - name: passthrough
        sni: "*.example.net"
        upstream: "10.0.0.1:443"
"""


def sniui_certs(config: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "NO_COLOR": "1", "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "sniui", "certs", "-c", str(config), *extra],
                          capture_output=True, text=True, env=env, cwd=config.parent, timeout=60)


def write_config(root: Path, leaf: trustme.LeafCert, text: str = CONFIG) -> Path:
    (root / "certs").mkdir(exist_ok=True)
    (root / "certs" / "api.pem").write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    key = root / "certs" / "api.key"
    key.write_bytes(leaf.private_key_pem.bytes())
    os.chmod(key, 0o600)
    path = root / "sniui.yaml"
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def test_good_config_prints_the_mapping_and_exits_0(tmp_path: Path, ca: trustme.CA) -> None:
    not_after = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=90, hours=12)
    config = write_config(tmp_path, ca.issue_cert("api.example.com", "www.example.com", common_name="api.example.com",
                                                  not_after=not_after))
    result = sniui_certs(config)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "certificate api" in out
    assert "api.example.com, www.example.com" in out          # SANs
    assert "(90 days left)" in out
    assert f"{not_after:%Y-%m-%d}" in out
    assert "EC P-256 (256 bits)" in out
    assert "CN=api.example.com" in out                        # subject
    assert "Testing CA" in out                                # issuer
    assert re.search(r"^\s+routes\s+api\s*$", out, re.MULTILINE)     # the routes using it
    assert "0 error(s), 0 warning(s)" in out


def test_bad_config_prints_located_findings_with_fixes_and_exits_1(tmp_path: Path, ca: trustme.CA) -> None:
    expired = ca.issue_cert("api.example.com", not_before=dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc),
                            not_after=dt.datetime(2021, 1, 1, tzinfo=dt.timezone.utc))
    config = write_config(tmp_path, expired)
    os.chmod(tmp_path / "certs" / "api.key", 0o644)
    result = sniui_certs(config)
    assert result.returncode == 1, result.stdout + result.stderr
    out = result.stdout
    assert "expired" in out and "days ago" in out
    # file:line field: severity: message, then the fix on its own line.
    assert f"{config}:3 certificates.api.cert: error: certificate " in out and "expired on 2021-01-01 00:00 UTC" in out
    assert f"{config}:7 routes[0].sni[1]: error: www.example.com is not covered: certificate 'api' lists api.example.com" in out
    assert f"{config}:4 certificates.api.key: warning: key file {tmp_path / 'certs' / 'api.key'} is open to group or others" in out
    assert f"    fix: chmod 600 {tmp_path / 'certs' / 'api.key'}" in out
    assert "2 error(s), 1 warning(s)" in out
    # Findings are listed in config-file order, like a compiler's messages.
    assert out.index(f"{config}:3 ") < out.index(f"{config}:4 ") < out.index(f"{config}:7 ")


def test_warnings_alone_exit_0(tmp_path: Path, ca: trustme.CA) -> None:
    config = write_config(tmp_path, ca.issue_cert("api.example.com", "www.example.com"))
    os.chmod(tmp_path / "certs" / "api.key", 0o640)
    result = sniui_certs(config)
    assert result.returncode == 0
    assert "warning: key file" in result.stdout


def test_json_output(tmp_path: Path, ca: trustme.CA) -> None:
    config = write_config(tmp_path, ca.issue_cert("api.example.com"))
    result = sniui_certs(config, "--json")
    assert result.returncode == 1
    data = json.loads(result.stdout)
    [certificate] = data["certificates"]
    assert certificate["name"] == "api" and certificate["sans"] == ["api.example.com"]
    assert certificate["routes"] == ["api"] and certificate["key_matches"] is True and certificate["days_left"] > 0
    [finding] = data["findings"]
    assert finding["severity"] == "error" and finding["field"] == "routes[0].sni[1]" and finding["line"] == 7
    assert finding["fix"].startswith("add www.example.com to the certificate's subjectAltName")
    assert (data["errors"], data["warnings"]) == (1, 0)


def test_missing_material_is_reported_not_raised(tmp_path: Path) -> None:
    config = tmp_path / "sniui.yaml"
    config.write_text(textwrap.dedent(CONFIG))
    result = sniui_certs(config)
    assert result.returncode == 1
    assert "did not load (see findings)" in result.stdout
    assert f"{config}:3 certificates.api.cert: error: certificate file {tmp_path / 'certs' / 'api.pem'} does not exist" in result.stdout
    assert "Traceback" not in result.stderr


def test_unloadable_config_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "sniui.yaml"
    config.write_text("routes:\n  - sni: api.example.com\n    mode: terminate\n    upstream: '127.0.0.1:1'\n")
    result = sniui_certs(config)
    assert result.returncode == 2
    assert "routes[0].certificate: mode: terminate needs a certificate" in result.stderr


def test_certificate_issues_for_sniui_check(tmp_path: Path, ca: trustme.CA) -> None:
    config = write_config(tmp_path, ca.issue_cert("api.example.com"))
    [issue] = certificate_issues(load_file(config))
    assert (issue.file, issue.line, issue.loc, issue.severity) == (str(config), 7, ("routes", 0, "sni", 1), "error")
    assert str(issue).startswith(f"{config}:7 routes[0].sni[1]: www.example.com is not covered")
    assert "; fix: add www.example.com" in issue.message
