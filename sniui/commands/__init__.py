"""Implementations of the `sniui` subcommands; `sniui.cli` parses arguments and imports these lazily."""
