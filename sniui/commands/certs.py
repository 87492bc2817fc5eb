"""`sniui certs -c FILE`: each certificate, the routes using it, and every finding.

Exit status: 0 when there is no error finding (warnings allowed), 1 when
there is one, 2 when the config itself cannot be loaded.
"""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from sniui.commands.common import load_or_report
from sniui.config.loader import LoadedConfig, line_for
from sniui.config.models import format_loc
from sniui.tls.certificates import EXPIRY_WARNING, CertificateInfo, CertificateReport, certificate_issues, check_certificates
from sniui.tls.findings import CertFinding

__all__ = ["certificate_issues", "run_certs"]


def _console() -> Console:
    # Piped output (CI logs, grep) gets rich's 80 columns by default, which folds
    # long names and SAN lists mid-word; give tables room instead.
    console = Console()
    if not console.is_terminal:
        console = Console(width=max(console.width, 160))
    return console


def _days_style(info: CertificateInfo) -> str:
    if info.days_left is None:
        return "dim"
    if info.days_left < 0:
        return "bold red"
    if info.days_left < EXPIRY_WARNING.days:
        return "yellow"
    return "green"


def _yes_no(value: bool | None) -> str:
    return {True: "[green]yes[/]", False: "[bold red]NO[/]", None: "[dim]unknown[/]"}[value]


def _info_table(info: CertificateInfo, routes: list[str]) -> Table:
    table = Table(title=f"certificate [bold]{escape(info.name)}[/]", title_justify="left", show_header=False, box=None, padding=(0, 2))
    table.add_column("field", style="bold", no_wrap=True)
    table.add_column("value", overflow="fold")
    table.add_row("cert", escape(str(info.cert_path)))
    table.add_row("key", escape(str(info.key_path)))
    if info.loaded:
        table.add_row("subject", escape(info.subject or ""))
        table.add_row("SANs", escape(", ".join(info.sans)) if info.sans else "[bold red]none[/] (clients ignore the subject CN)")
        table.add_row("issuer", escape(info.issuer or ""))
        assert info.not_after is not None and info.days_left is not None
        days = f"{info.days_left} days left" if info.days_left >= 0 else f"expired {-info.days_left} days ago"
        table.add_row("not after", f"{info.not_after:%Y-%m-%d %H:%M} UTC  [{_days_style(info)}]({days})[/]")
        table.add_row("chain", escape(" → ".join(info.chain)))
        table.add_row("chain OK", _yes_no(info.chain_ok))
        table.add_row("signature", escape(info.signature_hash or "(none: EdDSA)"))
    else:
        table.add_row("certificate", "[bold red]did not load[/] (see findings)")
    key = f"{info.key_type} ({info.key_bits} bits)" if info.key_type else "[dim]unknown[/]"
    table.add_row("key type", key)
    table.add_row("key matches", _yes_no(info.key_matches))
    table.add_row("routes", escape(", ".join(routes)) if routes else "[dim]none[/]")
    return table


def _where(finding: CertFinding, loaded: LoadedConfig) -> str:
    file = loaded.config.source or "<config>"
    line = line_for(finding.loc, loaded.lines)
    return f"{file}:{line}" if line else file


def _finding_json(finding: CertFinding, loaded: LoadedConfig) -> dict:
    return {**finding.to_json(), "config": loaded.config.source, "line": line_for(finding.loc, loaded.lines)}


def _print_text(report: CertificateReport, loaded: LoadedConfig, console: Console) -> None:
    if not report.certificates:
        console.print("no certificates: configured (terminating routes need one)")
    for name, info in report.certificates.items():
        console.print(_info_table(info, report.routes.get(name, [])))
        console.print()
    # In config-file order, like a compiler's messages; errors first within a line.
    ordered = sorted(report.findings, key=lambda f: (line_for(f.loc, loaded.lines) or 0, f.severity != "error"))
    for finding in ordered:
        colour = "red" if finding.severity == "error" else "yellow"
        console.print(
            f"{escape(_where(finding, loaded))} {escape(format_loc(finding.loc))}: "
            f"[{colour}]{finding.severity}[/]: {escape(finding.message)}",
            soft_wrap=True,
        )
        console.print(f"    fix: {escape(finding.fix)}", soft_wrap=True)
    errors, warnings = len(report.errors), len(report.warnings)
    summary = f"{len(report.certificates)} certificate(s): {errors} error(s), {warnings} warning(s)"
    console.print(f"[red]{summary}[/]" if errors else f"[yellow]{summary}[/]" if warnings else f"[green]{summary}[/]")


def run_certs(config_path: Path, as_json: bool = False) -> int:
    loaded = load_or_report(config_path)
    if loaded is None:
        return 2
    report = check_certificates(loaded.config)
    if as_json:
        payload = {
            "config": loaded.config.source,
            "certificates": [{**info.to_json(), "routes": report.routes.get(name, [])} for name, info in report.certificates.items()],
            "findings": [_finding_json(f, loaded) for f in report.findings],
            "errors": len(report.errors),
            "warnings": len(report.warnings),
        }
        print(json.dumps(payload, indent=2))
    else:
        _print_text(report, loaded, _console())
    return 1 if report.errors else 0
