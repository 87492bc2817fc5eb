"""`sniui check -c FILE`: validate the config and run its `tests:` block."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from sniui.commands.common import load_or_report
from sniui.config import Config
from sniui.config.models import Expectation
from sniui.routing import Decision, RouteTable

REJECT = "reject"


@dataclass(frozen=True)
class ExpectationResult:
    expectation: Expectation
    decision: Decision

    @property
    def outcome(self) -> str:
        """What the table decided, in the vocabulary of `expect:`."""
        return REJECT if self.decision.action == "reject" else (self.decision.upstream or "")

    @property
    def passed(self) -> bool:
        expected = self.expectation.expect.strip()
        if expected.lower() == REJECT:
            return self.decision.action == "reject"
        return self.decision.action == "route" and expected in (self.decision.upstream, f"route:{self.decision.route}")


def run_expectations(config: Config, table: RouteTable | None = None) -> list[ExpectationResult]:
    """Decide every `tests:` entry against `table` (default: the config's own table)."""
    table = table or RouteTable(config)
    return [ExpectationResult(t, table.match(t.sni, t.alpn, explain=True)) for t in config.tests]


def _certificate_issues(loaded) -> list:
    # Certificate findings come from the certificates module when it is present.
    try:
        from sniui.commands.certs import certificate_issues
    except ImportError:
        return []
    return certificate_issues(loaded)


def run_check(config_path: Path, *, as_json: bool = False) -> int:
    loaded = load_or_report(config_path)
    if loaded is None:
        return 2
    cert_issues = _certificate_issues(loaded)
    for issue in cert_issues:
        print(issue, file=sys.stderr)
    cert_errors = [i for i in cert_issues if i.severity == "error"]
    results = run_expectations(loaded.config)
    failed = [r for r in results if not r.passed]

    if as_json:
        json.dump({
            "config": str(config_path),
            "routes": len(loaded.config.routes),
            "certificate_errors": [str(i) for i in cert_errors],
            "tests": [
                {"sni": r.expectation.sni, "expect": r.expectation.expect, "got": r.outcome,
                 "route": r.decision.route, "passed": r.passed,
                 "reason": r.decision.reject_reason}
                for r in results
            ],
            "passed": not failed and not cert_errors,
        }, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        console = Console(highlight=False)
        console.print(f"[green]✓[/] {config_path}: valid — {len(loaded.config.routes)} routes, "
                      f"{len(loaded.config.upstreams)} upstream groups, {len(loaded.config.certificates)} certificates")
        if results:
            table = Table(title=f"tests: {len(results) - len(failed)}/{len(results)} passed", title_justify="left")
            for column in ("", "sni", "expect", "got", "via"):
                table.add_column(column)
            for r in results:
                via = r.decision.route or ""
                if r.decision.action == "reject" and r.decision.reject_reason:
                    via = f"{via}: {r.decision.reject_reason}"
                table.add_row("[green]✓[/]" if r.passed else "[red]✗[/]", r.expectation.sni or "(no SNI)",
                              r.expectation.expect, r.outcome, via, style=None if r.passed else "red")
            console.print(table)
        else:
            console.print("[dim]no tests: block — add expectations to check routing decisions[/]")
        if cert_errors:
            console.print(f"[red]✗ {len(cert_errors)} certificate error(s)[/]")
    return 1 if failed or cert_errors else 0
