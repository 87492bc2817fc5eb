"""sniui: an SNI router with a terminal UI."""

__version__ = "0.1.0"
