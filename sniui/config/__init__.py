"""The config contract: pydantic models of the YAML file, loading with located errors, saving."""

from sniui.config.loader import ConfigError, LoadedConfig, LocatedIssue, load_config, load_file, load_text, save_config, to_yaml
from sniui.config.models import Config, Route, UpstreamGroup

__all__ = [
    "Config", "ConfigError", "LoadedConfig", "LocatedIssue", "Route", "UpstreamGroup",
    "load_config", "load_file", "load_text", "save_config", "to_yaml",
]
