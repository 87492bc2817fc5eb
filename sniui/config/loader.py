"""Reading and writing the YAML file, with every error located as `file:line field: message`.

PyYAML's node tree keeps line numbers; we build the plain data and a map from
field path to line in one walk, hand the data to pydantic, and translate its
error locations (and `cross_check`'s) back to lines.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from sniui.config.models import Config, Issue, Loc, cross_check, format_loc


@dataclass(frozen=True, slots=True)
class LocatedIssue:
    file: str
    line: int | None
    loc: Loc
    message: str
    severity: str = "error"

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        field = format_loc(self.loc)
        prefix = "warning: " if self.severity == "warning" else ""
        return f"{where} {field}: {prefix}{self.message}" if field else f"{where}: {prefix}{self.message}"


class ConfigError(Exception):
    """A config that cannot be used; `issues` holds every located error (and any warnings)."""

    def __init__(self, issues: list[LocatedIssue]):
        self.issues = issues
        super().__init__("\n".join(str(i) for i in issues if i.severity == "error"))

    @property
    def errors(self) -> list[LocatedIssue]:
        return [i for i in self.issues if i.severity == "error"]


@dataclass(frozen=True)
class LoadedConfig:
    config: Config
    warnings: list[LocatedIssue]
    lines: dict[Loc, int]


class _DuplicateKey(Exception):
    def __init__(self, key: str, line: int, first_line: int):
        self.key, self.line, self.first_line = key, line, first_line


def _to_data(node: yaml.Node, loc: Loc, lines: dict[Loc, int], constructor: yaml.SafeLoader) -> Any:
    lines.setdefault(loc, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        first_seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            key = constructor.construct_object(key_node, deep=True)
            if key in first_seen:
                raise _DuplicateKey(str(key), key_node.start_mark.line + 1, first_seen[key])
            first_seen[key] = key_node.start_mark.line + 1
            child = loc + (key,)
            lines[child] = key_node.start_mark.line + 1
            out[key] = _to_data(value_node, child, lines, constructor)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_to_data(item, loc + (i,), lines, constructor) for i, item in enumerate(node.value)]
    return constructor.construct_object(node, deep=True)


def parse_yaml(text: str, file: str) -> tuple[Any, dict[Loc, int]]:
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        lines: dict[Loc, int] = {}
        data = _to_data(node, (), lines, loader) if node is not None else {}
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise ConfigError([LocatedIssue(file, line, (), f"YAML syntax: {exc.problem or exc}")]) from None
    except _DuplicateKey as exc:
        raise ConfigError([LocatedIssue(file, exc.line, (), f"key {exc.key!r} appears twice (first at line {exc.first_line}); YAML would silently keep only the last")]) from None
    finally:
        loader.dispose()
    return data, lines


def line_for(loc: Loc, lines: dict[Loc, int]) -> int | None:
    """The line of the deepest part of `loc` that exists in the file."""
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


def _pydantic_issues(exc: ValidationError) -> list[Issue]:
    issues = []
    for error in exc.errors(include_url=False):
        # Drop pydantic's internal steps (union branches, validator names) from the path.
        loc = tuple(p for p in error["loc"] if isinstance(p, int) or not (p.startswith("function-") or "[" in p or p in ("str", "list[str]")))
        message = error["msg"]
        if message.startswith("Value error, "):
            message = message[len("Value error, "):]
        if error["type"] == "missing":
            message = f"missing required field {loc[-1]!r}"
        elif error["type"] == "extra_forbidden":
            message = f"unknown field {loc[-1]!r}" + _field_hint(loc, exc)
        issues.append(Issue(loc, message))
    return issues


def _field_hint(loc: Loc, exc: ValidationError) -> str:
    model = _model_at(Config, loc[:-1])
    if model is None:
        return ""
    import difflib

    close = difflib.get_close_matches(str(loc[-1]), list(model.model_fields), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else f" (known fields: {', '.join(model.model_fields)})"


def _model_at(model: Any, loc: Loc) -> Any:
    import typing

    from pydantic import BaseModel

    current = model
    for part in loc:
        if isinstance(part, int):
            continue
        field = current.model_fields.get(part) if isinstance(current, type) and issubclass(current, BaseModel) else None
        if field is None:
            if isinstance(current, type) and issubclass(current, BaseModel):
                return None
            continue
        annotation = field.annotation
        current = None
        for candidate in [annotation, *typing.get_args(annotation)]:
            for inner in [candidate, *typing.get_args(candidate)]:
                if isinstance(inner, type) and issubclass(inner, BaseModel):
                    current = inner
        if current is None:
            return None
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def validate_data(data: Any, *, file: str, lines: dict[Loc, int] | None = None, base_dir: Path | None = None) -> LoadedConfig:
    """Validate already-parsed data; raise ConfigError with every located error."""
    lines = lines or {}
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([LocatedIssue(file, 1, (), "the config must be a mapping of sections (listen:, routes:, ...)")])
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        located = [LocatedIssue(file, line_for(i.loc, lines), i.loc, i.message) for i in _pydantic_issues(exc)]
        raise ConfigError(located) from None
    config.anchored(base_dir or Path.cwd(), file)
    located = [LocatedIssue(file, line_for(i.loc, lines), i.loc, i.message, i.severity) for i in cross_check(config)]
    if any(i.severity == "error" for i in located):
        raise ConfigError(located)
    return LoadedConfig(config, located, lines)


def load_text(text: str, *, file: str = "<config>", base_dir: Path | None = None) -> LoadedConfig:
    data, lines = parse_yaml(text, file)
    return validate_data(data, file=file, lines=lines, base_dir=base_dir)


def load_file(path: str | os.PathLike[str]) -> LoadedConfig:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([LocatedIssue(str(path), None, (), f"cannot read: {exc.strerror or exc}")]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([LocatedIssue(str(path), None, (), f"not UTF-8 text: {exc.reason}")]) from None
    return load_text(text, file=str(path), base_dir=path.resolve().parent)


def load_config(path: str | os.PathLike[str]) -> Config:
    return load_file(path).config


def to_yaml(config: Config) -> str:
    data = config.model_dump(mode="json", exclude_defaults=True)
    for route in data.get("routes", []):
        if isinstance(route.get("sni"), list) and len(route["sni"]) == 1:
            route["sni"] = route["sni"][0]
    # Keep the sections in the order the documentation presents them.
    order = list(Config.model_fields)
    data = {k: data[k] for k in order if k in data}
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=False, width=120)


def save_config(config: Config, path: str | os.PathLike[str]) -> Path | None:
    """Write atomically (temp file + rename); keep the previous file as `<name>.bak`.

    Returns the backup's path, if a previous file existed.
    """
    path = Path(path)
    text = to_yaml(config)
    load_text(text, file=str(path), base_dir=path.resolve().parent)  # never write a file we could not read back
    backup = None
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        if path.exists():
            backup = path.with_name(path.name + ".bak")
            shutil.copy2(path, backup)
            shutil.copymode(path, temp)
        os.replace(temp, path)
    except BaseException:
        if os.path.exists(temp):
            os.unlink(temp)
        raise
    return backup
