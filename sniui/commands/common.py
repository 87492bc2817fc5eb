"""Helpers shared by the subcommands."""

from __future__ import annotations

import sys
from pathlib import Path

from sniui.config import ConfigError, LoadedConfig, load_file


def load_or_report(config_path: Path) -> LoadedConfig | None:
    """Load the config, printing every located error (and warnings) to stderr; None when unusable."""
    try:
        loaded = load_file(config_path)
    except ConfigError as exc:
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        return None
    for warning in loaded.warnings:
        print(warning, file=sys.stderr)
    return loaded
