"""Structure rules the layout must keep: the headless path never loads Textual; every key names a real action."""

from __future__ import annotations

import subprocess
import sys

import pytest
from textual.binding import Binding

# Everything `sniui --headless`, `check`, `match`, `certs`, import/export and the demo load, plus the UI's
# Textual-free parts (the view, the table model, rates, replay data), which tools may use without a screen.
HEADLESS_MODULES = [
    "sniui.engine", "sniui.engine.engine", "sniui.headless", "sniui.headless.daemon", "sniui.headless.accesslog",
    "sniui.routing", "sniui.config", "sniui.tls", "sniui.tls.certificates", "sniui.tls.contexts", "sniui.cli",
    "sniui.commands.check", "sniui.commands.match", "sniui.commands.certs", "sniui.commands.interop", "sniui.demo",
    "sniui.ui.view", "sniui.ui.rows", "sniui.ui.rates", "sniui.ui.replay_data", "sniui.ui.format",
    "sniui.ui.dashboard_text", "sniui.ui.connection_lookup",
]


def test_headless_modules_do_not_import_textual():
    code = (
        "import importlib, sys\n"
        f"for name in {HEADLESS_MODULES!r}:\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except ModuleNotFoundError as exc:\n"
        "        if exc.name != name: raise\n"   # a module not written yet is not a violation
        "leaked = sorted(m for m in sys.modules if m == 'textual' or m.startswith('textual.'))\n"
        "print(','.join(leaked))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"Textual loaded by the headless path: {result.stdout}"


def _bound_classes():
    from sniui.ui.app import SniuiApp
    from sniui.ui.screens.dashboard import DashboardScreen
    from sniui.ui.screens.help import HelpScreen
    from sniui.ui.screens.logs import LogsScreen
    from sniui.ui.widgets.confirm import ConfirmDialog
    from sniui.ui.widgets.connections import ConnectionsTable
    from sniui.ui.widgets.filter import FilterBar

    classes = [SniuiApp, DashboardScreen, LogsScreen, HelpScreen, ConfirmDialog, ConnectionsTable, FilterBar]
    for module, name in (("sniui.ui.screens.routes", "RoutesScreen"),
                         ("sniui.ui.screens.certificates", "CertificatesScreen")):
        try:
            classes.append(getattr(__import__(module, fromlist=[name]), name))
        except ImportError:
            pass
    return classes


@pytest.mark.parametrize("cls", _bound_classes(), ids=lambda c: c.__name__)
def test_every_binding_names_a_real_action(cls):
    # Textual's own actions live on App/Screen/Widget; ours must be `action_<name>` somewhere on the class.
    for binding in cls.BINDINGS:
        if not isinstance(binding, Binding):
            binding = Binding(*binding)
        action = binding.action.partition("(")[0]
        target = action.rpartition(".")[2]
        owner = cls
        if action.startswith("app."):
            from sniui.ui.app import SniuiApp as owner  # noqa: N813
        assert callable(getattr(owner, f"action_{target}", None)), f"{cls.__name__}: {binding.key} → {binding.action}"


@pytest.mark.parametrize("cls", _bound_classes(), ids=lambda c: c.__name__)
def test_our_bindings_have_ids_and_tooltips(cls):
    for binding in cls.BINDINGS:
        assert isinstance(binding, Binding) and binding.id and binding.tooltip, f"{cls.__name__}: {binding}"


def test_run_tui_refuses_a_bad_config_before_starting_anything(tmp_path, capsys):
    from sniui.ui.app import run_tui

    bad = tmp_path / "sniui.yaml"
    bad.write_text("routes:\n  - sni: [\n")
    assert run_tui(bad) == 2
    assert "sniui.yaml:" in capsys.readouterr().err
    assert run_tui(tmp_path / "missing.yaml") == 2
