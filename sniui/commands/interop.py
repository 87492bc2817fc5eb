"""`sniui import nginx FILE` and `sniui export nginx|haproxy -c FILE`.

The converted config goes to stdout (or -o FILE); every finding goes to stderr,
so `sniui import nginx nginx.conf > sniui.yaml` keeps the two apart.
"""

from __future__ import annotations

import sys
from pathlib import Path

from sniui.commands.common import load_or_report
from sniui.config import ConfigError
from sniui.interop import Finding


def _write(text: str, output: str | None) -> None:
    if output is None or output == "-":
        sys.stdout.write(text)
        return
    Path(output).write_text(text, encoding="utf-8")


def _report(findings: list[Finding]) -> None:
    for finding in findings:
        print(finding, file=sys.stderr)


def run_import(kind: str, path: Path, output: str | None, *, assume_hostnames: bool = False) -> int:
    if kind != "nginx":
        print(f"sniui import: unknown kind {kind!r} (known: nginx)", file=sys.stderr)
        return 2
    from sniui.interop.nginx_import import import_nginx
    from sniui.interop.nginx_parser import NginxSyntaxError

    try:
        result = import_nginx(path, assume_hostnames=assume_hostnames)
    except NginxSyntaxError as exc:
        print(f"{exc} (nginx syntax)", file=sys.stderr)
        return 1
    except ConfigError as exc:
        # The importer drops what sniui refuses; reaching here is a bug worth reporting with its detail.
        print(f"sniui import: the converted config does not validate:\n{exc}", file=sys.stderr)
        return 1
    _report(result.findings)
    _write(result.yaml, output)
    if output:
        print(f"sniui import: wrote {output} ({len(result.config.routes)} routes, {len(result.findings)} finding(s)); "
              f"check it with: sniui check -c {output}", file=sys.stderr)
    return 0


def run_export(kind: str, config_path: Path, output: str | None) -> int:
    if kind not in ("nginx", "haproxy"):
        print(f"sniui export: unknown kind {kind!r} (known: nginx, haproxy)", file=sys.stderr)
        return 2
    loaded = load_or_report(config_path)
    if loaded is None:
        return 1
    if kind == "nginx":
        from sniui.interop.nginx_export import export_nginx as export
    else:
        from sniui.interop.haproxy_export import export_haproxy as export
    result = export(loaded.config, source=str(config_path))
    _report(result.findings)
    _write(result.text, output)
    return 0
