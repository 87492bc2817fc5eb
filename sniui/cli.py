"""`sniui` command line: argument parsing and dispatch.

Front ends are imported lazily so `sniui --headless`, `check` and `match`
start without loading Textual.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sniui import __version__

DEFAULT_CONFIG = "sniui.yaml"


def _add_config(parser: argparse.ArgumentParser, *, required: bool = False) -> None:
    parser.add_argument("-c", "--config", metavar="FILE", required=required,
                        help=f"config file (default: ./{DEFAULT_CONFIG})" if not required else "config file")


def _worker_count(text: str) -> int:
    try:
        count = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 1 <= count <= 256:
        raise argparse.ArgumentTypeError(f"expected 1 to 256, got {count}")
    return count


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sniui",
        description="An SNI router with a terminal UI. Without a command: the TUI on ./sniui.yaml, "
                    "or on a built-in demo when there is none.",
    )
    parser.add_argument("--version", action="version", version=f"sniui {__version__}")
    _add_config(parser)
    parser.add_argument("--headless", action="store_true", help="run as a daemon without the TUI (logs to stdout)")
    parser.add_argument("--demo", action="store_true", help="run the built-in demo (loopback only, own upstreams)")
    parser.add_argument("--read-only", action="store_true", help="TUI: hide every action that changes anything")
    parser.add_argument("--drain", default="30s", metavar="DURATION",
                        help="headless: on SIGTERM, let established connections finish for this long (default 30s)")
    parser.add_argument("--log-format", choices=("json", "text"), default="json",
                        help="headless: access log format on stdout (default json)")
    parser.add_argument("--log-file", metavar="FILE", help="headless: write the access log here instead of stdout")
    parser.add_argument("--workers", type=_worker_count, default=1, metavar="N",
                        help="headless: run N engine processes sharing the listen ports (SO_REUSEPORT; the kernel "
                             "spreads connections). Each worker is a full engine with its own limits, so "
                             "max_connections and max_connections_per_client apply per worker (default 1)")
    parser.add_argument("--worker-index", type=int, help=argparse.SUPPRESS)   # set by the --workers supervisor

    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    check = commands.add_parser("check", help="validate a config and run its tests: block")
    _add_config(check)
    check.add_argument("--json", action="store_true", help="machine-readable output")

    match = commands.add_parser("match", help="explain the routing decision for each name")
    _add_config(match)
    match.add_argument("names", nargs="+", metavar="NAME", help="server names; '-' for a hello without SNI")
    match.add_argument("--alpn", help="ALPN protocol the client offers (shown in the decision)")
    match.add_argument("--json", action="store_true", help="machine-readable output")

    certs = commands.add_parser("certs", help="certificate mapping and findings")
    _add_config(certs)
    certs.add_argument("--json", action="store_true", help="machine-readable output")

    import_ = commands.add_parser("import", help="convert another router's config to sniui YAML")
    import_.add_argument("kind", choices=("nginx",))
    import_.add_argument("file", metavar="FILE")
    import_.add_argument("-o", "--output", metavar="FILE", help="write the YAML here (default: stdout)")
    import_.add_argument("--hostnames", action="store_true",
                         help="treat maps without `hostnames;` as if they had it (nginx itself would match '*.a.b' literally)")

    export = commands.add_parser("export", help="write sniui's routes as another router's config")
    export.add_argument("kind", choices=("nginx", "haproxy"))
    _add_config(export)
    export.add_argument("-o", "--output", metavar="FILE", help="write here (default: stdout)")
    return parser


def resolve_config_path(given: str | None) -> Path | None:
    """The file to use: -c FILE, else ./sniui.yaml if present, else None (the demo)."""
    if given:
        return Path(given)
    default = Path(DEFAULT_CONFIG)
    return default if default.exists() else None


def _require_config(given: str | None) -> Path:
    path = resolve_config_path(given)
    if path is None:
        print(f"sniui: no config: pass -c FILE or create ./{DEFAULT_CONFIG}", file=sys.stderr)
        raise SystemExit(2)
    return path


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "check":
        from sniui.commands.check import run_check

        return run_check(_require_config(args.config), as_json=args.json)
    if args.command == "match":
        from sniui.commands.match import run_match

        return run_match(_require_config(args.config), args.names, alpn=args.alpn, as_json=args.json)
    if args.command == "certs":
        from sniui.commands.certs import run_certs

        return run_certs(_require_config(args.config), as_json=args.json)
    if args.command == "import":
        from sniui.commands.interop import run_import

        return run_import(args.kind, Path(args.file), output=args.output, assume_hostnames=args.hostnames)
    if args.command == "export":
        from sniui.commands.interop import run_export

        return run_export(args.kind, _require_config(args.config), output=args.output)

    config_path = None if args.demo else resolve_config_path(args.config)
    if args.headless:
        from sniui.headless.daemon import run_daemon

        return run_daemon(config_path, drain=args.drain, log_format=args.log_format, log_file=args.log_file,
                          workers=args.workers, worker_index=args.worker_index)
    if args.workers != 1:
        print("sniui: --workers is for --headless; the TUI always runs one engine", file=sys.stderr)
        return 2
    from sniui.ui.app import run_tui

    return run_tui(config_path, read_only=args.read_only)


if __name__ == "__main__":
    raise SystemExit(main())
