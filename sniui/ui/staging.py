"""The staged edit session behind the Routes and Certificates screens.

HAProxy's runtime API taught operators a safe rhythm: prepare a change,
validate it, look at it, then commit or abort. This module is that rhythm for
sniui's config, in plain Python so it is tested without a terminal:

- the working copy is the config *as data* (the same dict the YAML holds), so
  every edit is validated by the same pydantic models and `cross_check` that
  `sniui check` runs, and every message is the one `sniui check` prints;
- `diff()` compares the working copy with the running config: routes added,
  removed, changed or moved, certificate entries, other sections, and which
  `tests:` expectations would change decision or start failing;
- `build()` gives the Config to hand to the engine; `mark_applied`, `save`
  and `revert` close the loop.

Textual is not imported here: the screens own the presentation.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from sniui.config.loader import ConfigError, LocatedIssue, save_config, validate_data
from sniui.config.models import Config, Expectation, format_loc
from sniui.routing.table import RouteTable
from sniui.ui.route_data import RouteData, RouteRow, labels_of, precedence_rows
from sniui.ui.staged_diff import (
    EntryChange, ExpectationChange, ExpectationOutcome, RouteChange, StagedDiff, evaluate_expectation, fallback_change,
)

# -- validation results ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FieldIssue:
    """One message from the config models, attached to a field of the thing being edited."""

    field: str          # the first path step below the edited object ("sni", "upstream"), "" for the object itself
    path: str           # the full field path as `sniui check` prints it: routes[2].sni[0]
    message: str
    severity: str = "error"

    def __str__(self) -> str:
        prefix = "warning: " if self.severity == "warning" else ""
        return f"{self.path}: {prefix}{self.message}"


@dataclass(frozen=True, slots=True)
class FieldCheck:
    """The issues found for one edited object, grouped by field."""

    issues: tuple[FieldIssue, ...] = ()

    @property
    def ok(self) -> bool:
        return not any(i.severity == "error" for i in self.issues)

    def for_field(self, name: str) -> list[FieldIssue]:
        return [i for i in self.issues if i.field == name]

    def messages(self, name: str) -> list[str]:
        return [i.message if i.severity == "error" else f"warning: {i.message}" for i in self.for_field(name)]


@dataclass(frozen=True)
class Validation:
    """The working copy checked as a whole: a usable Config, or the errors refusing it."""

    config: Config | None
    issues: tuple[LocatedIssue, ...]

    @property
    def ok(self) -> bool:
        return self.config is not None

    @property
    def errors(self) -> list[LocatedIssue]:
        return [i for i in self.issues if i.severity == "error"]

    @property
    def warnings(self) -> list[LocatedIssue]:
        return [i for i in self.issues if i.severity == "warning"]


# -- the session ------------------------------------------------------------------------------


def config_data(config: Config) -> dict[str, Any]:
    """The config as the YAML would hold it (defaults left out), for editing and comparing."""
    return config.model_dump(mode="json", exclude_defaults=True)


class StagedSession:
    """A working copy of the running config, edited without touching the engine.

    Every edit bumps `revision`, so screens can tell cheaply whether to redraw.
    """

    def __init__(self, running: Config, *, path: Path | None = None):
        self.path = Path(path) if path is not None else None
        self.running = running
        self._running_data = config_data(running)
        self._saved_data: dict[str, Any] | None = copy.deepcopy(self._running_data) if path is not None else None
        self._data = copy.deepcopy(self._running_data)
        # Which running route each working route came from (None: added here);
        # lets the diff say "changed" even when a route's name or pattern was edited.
        self._origins: list[int | None] = list(range(len(self._data.get("routes") or [])))
        self.revision = 0
        # Derived values (validation, tables, diff) cost real time on big configs and
        # several widgets ask for them per redraw: computed once per revision.
        self._memo: dict[str, tuple[int, Any]] = {}
        self._running_table: tuple[Config, RouteTable] | None = None

    # -- reading -------------------------------------------------------------

    @property
    def file(self) -> str:
        return str(self.path) if self.path is not None else (self.running.source or "<staged>")

    @property
    def data(self) -> dict[str, Any]:
        return copy.deepcopy(self._data)

    @property
    def routes(self) -> list[RouteData]:
        return copy.deepcopy(list(self._data.get("routes") or []))

    def route(self, index: int) -> RouteData:
        return copy.deepcopy(self._data["routes"][index])

    def labels(self) -> list[str]:
        return labels_of(list(self._data.get("routes") or []))

    @property
    def certificates(self) -> dict[str, dict[str, str]]:
        return copy.deepcopy(dict(self._data.get("certificates") or {}))

    @property
    def unapplied(self) -> bool:
        return self._data != self._running_data

    @property
    def unsaved(self) -> bool:
        """The working copy differs from the file (from the running config when there is no file yet)."""
        reference = self._saved_data if self._saved_data is not None else self._running_data
        return self._data != reference

    def rows(self) -> list[RouteRow]:
        return precedence_rows(self._data)

    # -- editing -------------------------------------------------------------

    def _changed(self) -> None:
        self.revision += 1

    def add_route(self, route: RouteData, index: int | None = None) -> int:
        routes = self._data.setdefault("routes", [])
        index = len(routes) if index is None else max(0, min(index, len(routes)))
        routes.insert(index, copy.deepcopy(route))
        self._origins.insert(index, None)
        self._changed()
        return index

    def replace_route(self, index: int, route: RouteData) -> None:
        self._data["routes"][index] = copy.deepcopy(route)
        self._changed()

    def delete_route(self, index: int) -> RouteData:
        removed = self._data["routes"].pop(index)
        self._origins.pop(index)
        if not self._data["routes"]:
            del self._data["routes"]
        self._changed()
        return removed

    def move_route(self, index: int, delta: int) -> int:
        """Move a route up (delta < 0) or down in file order; returns its new index."""
        routes = self._data.get("routes") or []
        target = max(0, min(index + delta, len(routes) - 1))
        if target != index:
            routes.insert(target, routes.pop(index))
            self._origins.insert(target, self._origins.pop(index))
            self._changed()
        return target

    def set_certificate(self, name: str, entry: dict[str, str], *, old_name: str | None = None) -> None:
        certificates = self._data.setdefault("certificates", {})
        if old_name is not None and old_name != name:
            certificates.pop(old_name, None)
        certificates[name] = dict(entry)
        self._changed()

    def remove_certificate(self, name: str) -> None:
        certificates = self._data.get("certificates") or {}
        certificates.pop(name, None)
        if not certificates:
            self._data.pop("certificates", None)
        self._changed()

    def map_certificate(self, route_index: int, certificate: str | None) -> None:
        """Serve `certificate` on a route (which then terminates TLS), or go back to passthrough."""
        route = self._data["routes"][route_index]
        if certificate:
            route["mode"] = "terminate"
            route["certificate"] = certificate
        else:
            for key in ("mode", "certificate", "client_ca", "alpn"):
                route.pop(key, None)
        self._changed()

    def fallback(self, name: str) -> dict[str, Any] | None:
        """`default` (always there, {} when all defaults) or `no_sni` (None when absent)."""
        value = self._data.get(name)
        if value is None and name == "default":
            return {}
        return copy.deepcopy(value)

    def add_test(self, sni: str | None, expect: str, alpn: str | None = None) -> int:
        """Pin a routing expectation into the `tests:` block; returns its index."""
        entry: dict[str, Any] = {"sni": sni, "expect": expect}
        if alpn:
            entry["alpn"] = alpn
        tests = self._data.setdefault("tests", [])
        tests.append(entry)
        self._changed()
        return len(tests) - 1

    def remove_test(self, index: int) -> dict[str, Any]:
        tests = self._data.get("tests") or []
        removed = tests.pop(index)
        if not tests:
            self._data.pop("tests", None)
        self._changed()
        return removed

    def set_fallback(self, name: str, data: dict[str, Any] | None) -> None:
        """Replace `default` / `no_sni`; None removes no_sni (then `default` applies to hellos without SNI)."""
        if data is None or (name == "default" and not data):
            self._data.pop(name, None)
        else:
            self._data[name] = copy.deepcopy(data)
        self._changed()

    def check_fallback(self, name: str, data: dict[str, Any]) -> FieldCheck:
        candidate = copy.deepcopy(self._data)
        candidate[name] = copy.deepcopy(data)
        return _issues_under(self._validate_data(candidate).issues, (name,))

    def revert(self) -> None:
        """Back to the running config."""
        self._data = copy.deepcopy(self._running_data)
        self._origins = list(range(len(self._data.get("routes") or [])))
        self._changed()

    # -- checking ------------------------------------------------------------

    def _validate_data(self, data: dict[str, Any]) -> Validation:
        try:
            loaded = validate_data(copy.deepcopy(data), file=self.file, base_dir=self.running.base_dir)
        except ConfigError as exc:
            return Validation(None, tuple(exc.issues))
        return Validation(loaded.config, tuple(loaded.warnings))

    def _cached(self, key: str, compute: Callable[[], Any]) -> Any:
        hit = self._memo.get(key)
        if hit is None or hit[0] != self.revision:
            hit = (self.revision, compute())
            self._memo[key] = hit
        return hit[1]

    def validate(self) -> Validation:
        """The whole working copy through the config models (cached per revision)."""
        return self._cached("validation", lambda: self._validate_data(self._data))

    def check_route(self, route: RouteData, index: int | None = None) -> FieldCheck:
        """Validate `route` in place of routes[index] (or appended), in the context of everything else.

        Only the issues located inside that route are returned; they are the
        messages `sniui check` would print for it.
        """
        data = copy.deepcopy(self._data)
        routes = data.setdefault("routes", [])
        if index is None:
            index = len(routes)
            routes.append(copy.deepcopy(route))
        else:
            routes[index] = copy.deepcopy(route)
        return _issues_under(self._validate_data(data).issues, ("routes", index))

    def check_certificate(self, name: str, entry: dict[str, str], *, old_name: str | None = None) -> FieldCheck:
        """Validate a certificate entry in context (names, required fields); file contents are the caller's."""
        issues: list[FieldIssue] = []
        if not name.strip():
            issues.append(FieldIssue("name", "certificates", "a certificate entry needs a name"))
        elif name != old_name and name in (self._data.get("certificates") or {}):
            issues.append(FieldIssue("name", f"certificates.{name}", f"certificate {name!r} already exists"))
        data = copy.deepcopy(self._data)
        certificates = data.setdefault("certificates", {})
        if old_name is not None:
            certificates.pop(old_name, None)
        key = name.strip() or "_"
        certificates[key] = {k: v for k, v in entry.items() if v}
        found = _issues_under(self._validate_data(data).issues, ("certificates", key))
        return FieldCheck(tuple(issues) + found.issues)

    def build(self) -> Config:
        """The Config to apply; raises ConfigError with every located issue."""
        validation = self.validate()
        if validation.config is None:
            raise ConfigError(list(validation.issues))
        return validation.config

    def staged_table(self) -> RouteTable | None:
        def compile_staged() -> RouteTable | None:
            validation = self.validate()
            return RouteTable(validation.config) if validation.config is not None else None

        return self._cached("table", compile_staged)

    def running_table(self) -> RouteTable:
        if self._running_table is None or self._running_table[0] is not self.running:
            self._running_table = (self.running, RouteTable(self.running))
        return self._running_table[1]

    # -- expectations and the diff -------------------------------------------

    def expectations(self, table: RouteTable | None = None) -> list[ExpectationOutcome]:
        """The working copy's `tests:` run against `table` (default: the staged table)."""
        table = table or self.staged_table()
        if table is None:
            return []
        tests = self._staged_tests()
        return [evaluate_expectation(table, i, test) for i, test in enumerate(tests)]

    def _staged_tests(self) -> list[Expectation]:
        validation = self.validate()
        if validation.config is not None:
            return list(validation.config.tests)
        return list(self.running.tests)

    def diff(self) -> StagedDiff:
        return self._cached("diff", self._diff)

    def _diff(self) -> StagedDiff:
        staged_routes = list(self._data.get("routes") or [])
        running_routes = list(self._running_data.get("routes") or [])
        staged_labels = labels_of(staged_routes)
        running_labels = labels_of(running_routes)

        changes: list[RouteChange] = []
        kept: set[int] = set()
        # A route "moved" when its place among the kept regex routes changed: only
        # their relative file order can change a decision, and a deletion above a
        # route shifts its index without moving it.
        regex_origins = [o for o, r in zip(self._origins, staged_routes) if o is not None and _order_matters(r)]
        running_rank = {o: rank for rank, o in enumerate(sorted(regex_origins))}
        staged_rank = {o: rank for rank, o in enumerate(regex_origins)}
        for new_index, (origin, route) in enumerate(zip(self._origins, staged_routes)):
            if origin is None:
                changes.append(RouteChange("added", staged_labels[new_index], None, new_index, after=route))
                continue
            kept.add(origin)
            before = running_routes[origin]
            fields_changed = tuple(sorted(k for k in set(before) | set(route) if before.get(k) != route.get(k)))
            if fields_changed:
                changes.append(RouteChange("changed", staged_labels[new_index], origin, new_index, fields_changed, before, route))
            elif origin in staged_rank and staged_rank[origin] != running_rank[origin]:
                changes.append(RouteChange("moved", staged_labels[new_index], origin, new_index, before=before, after=route))
        for old_index, route in enumerate(running_routes):
            if old_index not in kept:
                changes.append(RouteChange("removed", running_labels[old_index], old_index, None, before=route))

        entries: list[EntryChange] = []
        for section in ("certificates", "upstreams"):
            old = self._running_data.get(section) or {}
            new = self._data.get(section) or {}
            for name in new:
                if name not in old:
                    entries.append(EntryChange(section, "added", name))
                elif old[name] != new[name]:
                    entries.append(EntryChange(section, "changed", name))
            entries += [EntryChange(section, "removed", name) for name in old if name not in new]

        sections = tuple(
            name for name in Config.model_fields
            if name not in ("routes", "certificates", "upstreams") and self._data.get(name) != self._running_data.get(name)
        )
        fallbacks = tuple(
            fallback_change(name, self._running_data.get(name), self._data.get(name))
            for name in ("default", "no_sni") if name in sections
        )
        return StagedDiff(tuple(changes), tuple(entries), sections, tuple(self._test_changes()), fallbacks)

    def _test_changes(self) -> list[ExpectationChange]:
        staged = self.staged_table()
        if staged is None:
            return []
        running = self.running_table()
        out = []
        for i, test in enumerate(self._staged_tests()):
            after = evaluate_expectation(staged, i, test)
            before = evaluate_expectation(running, i, test)
            if before.decision_key != after.decision_key or before.passed != after.passed:
                out.append(ExpectationChange(before, after))
        return out

    # -- committing ----------------------------------------------------------

    def mark_applied(self, config: Config) -> None:
        """The engine now runs `config`: it becomes the reference the diff is taken against."""
        self.running = config
        self._running_data = config_data(config)
        self._data = copy.deepcopy(self._running_data)
        self._origins = list(range(len(self._data.get("routes") or [])))
        self._changed()

    def rebase(self, running: Config) -> None:
        """The running config changed under us (another screen applied, a reload).

        Without local edits the working copy follows it; with edits they are
        kept, and routes are matched to the new running ones by label.
        """
        if not self.unapplied:
            self.mark_applied(running)
            return
        self.running = running
        self._running_data = config_data(running)
        running_labels = labels_of(list(self._running_data.get("routes") or []))
        self._origins = [running_labels.index(label) if label in running_labels else None for label in self.labels()]
        self._changed()

    def follow(self, running: Config) -> bool:
        """Track the engine's running config; True when it really changed (not just a new object)."""
        if running is self.running:
            return False
        if config_data(running) == self._running_data:
            self.running = running
            return False
        self.rebase(running)
        return True

    def save(self, path: Path | None = None) -> Path | None:
        """Write the working copy (atomic; the previous file kept as .bak). Returns the backup's path."""
        target = Path(path) if path is not None else self.path
        if target is None:
            raise ConfigError([LocatedIssue("<staged>", None, (), "this config has no file yet: choose where to save it")])
        config = self.build()
        backup = save_config(config, target)
        self.path = target
        self._saved_data = copy.deepcopy(self._data)
        self._changed()
        return backup


def _issues_under(issues: tuple[LocatedIssue, ...] | list[LocatedIssue], prefix: tuple[Any, ...]) -> FieldCheck:
    found = []
    for issue in issues:
        if tuple(issue.loc[: len(prefix)]) != prefix:
            continue
        rest = issue.loc[len(prefix):]
        name = str(rest[0]) if rest else ""
        found.append(FieldIssue(name, format_loc(issue.loc), issue.message, issue.severity))
    return FieldCheck(tuple(found))


def _order_matters(route: RouteData) -> bool:
    """File order only decides between regexes (and equal wildcards, which cross_check refuses)."""
    sni = route.get("sni") or []
    return any(str(text).startswith("~") for text in ([sni] if isinstance(sni, str) else sni))
