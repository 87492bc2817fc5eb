"""Imports point one way: config ← routing ← tls ← engine ← front ends. Never back.

Checked statically over every module (function-level imports included), so a
lazy import cannot smuggle a cycle in either.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "sniui"

# What each part of sniui may import from sniui. tls may consult routing (the
# HTTP/2 coalescing finding asks the route table who gets a name); routing
# never imports tls.
ALLOWED = {
    "config": {"config"},
    "routing": {"config", "routing"},
    "tls": {"config", "routing", "tls"},
    "engine": {"config", "routing", "tls", "engine"},
    "demo": {"config", "routing", "tls", "demo"},
    "interop": {"config", "routing", "interop"},
    "commands": {"config", "routing", "tls", "interop", "commands"},
    "headless": {"config", "routing", "tls", "engine", "demo", "headless"},
    "ui": {"config", "routing", "tls", "engine", "demo", "ui", "commands"},
}


def sniui_imports(path: Path) -> set[str]:
    """The first-level sniui packages a module imports (`sniui.engine.x` → `engine`)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] == "sniui" and len(parts) > 1:
                found.add(parts[1])
    return found


MODULES = sorted(p for p in PACKAGE.rglob("*.py") if p.parent != PACKAGE)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_one_way(path: Path):
    layer = path.relative_to(PACKAGE).parts[0]
    assert layer in ALLOWED, f"new package {layer!r}: add it to ALLOWED with the layers it may use"
    forbidden = sniui_imports(path) - ALLOWED[layer] - {"__init__"}
    assert not forbidden, f"{path.relative_to(PACKAGE)} ({layer}) imports {sorted(forbidden)}"


def test_the_checker_sees_a_violation(tmp_path: Path):
    # A checker that can never fail proves nothing: feed it a module that breaks the rule.
    module = tmp_path / "bad.py"
    module.write_text("def f():\n    from sniui.ui.app import run_tui\n    import sniui.headless.daemon\n")
    assert sniui_imports(module) == {"ui", "headless"}
