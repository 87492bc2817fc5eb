"""What the Routes and Certificates screens share: one staged session, and apply / save / revert.

Both screens edit the same working copy (a route mapped to a certificate on
one screen shows up on the other), so the session lives on the App as
`app.staging`; the first screen to need it creates it. Applying goes through
the diff dialog and then `view.apply` in a worker: the engine validates,
compiles and swaps, and established connections keep flowing (that is the
engine's promise; the UI only waits for the answer).
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from textual import work
from textual.app import App
from textual.screen import Screen
from textual.widgets import Static

from sniui.config.loader import ConfigError
from sniui.config.models import Config, format_loc
from sniui.engine.model import EngineSnapshot
from sniui.tls.certificates import validate_certificates
from sniui.tls.findings import CertFinding
from sniui.ui.staging import StagedSession
from sniui.ui.view import EngineView
from sniui.ui.widgets.confirm import ConfirmDialog
from sniui.ui.widgets.diff_dialog import DiffDialog, SaveAsDialog


def shared_session(app: App, view: EngineView) -> StagedSession:
    """The App's staged session, created on first use from the running config."""
    session = getattr(app, "staging", None)
    if not isinstance(session, StagedSession):
        session = StagedSession(view.running_config, path=view.config_path)
        app.staging = session  # type: ignore[attr-defined]
    return session


class StagedScreen(Screen):
    """Base for screens that edit the staged config. Subclasses implement `staged_changed`."""

    # Actions that change something: hidden from the footer and refused in --read-only.
    MUTATING: frozenset[str] = frozenset({"apply", "save", "revert"})

    def __init__(self, view: EngineView | None = None, session: StagedSession | None = None, **kwargs):
        super().__init__(**kwargs)
        self._view = view
        self._session = session
        self._shown_revision = -1
        self._ready = False
        self.applying = False

    @property
    def view(self) -> EngineView:
        if self._view is None:
            self._view = self.app.view  # type: ignore[attr-defined]
        return self._view

    @property
    def session(self) -> StagedSession:
        if self._session is None:
            self._session = shared_session(self.app, self.view)
        return self._session

    # -- lifecycle -------------------------------------------------------------
    #
    # The app's refresh loop may call `show_snapshot` as soon as the screen is
    # current, before its on_mount has built the tables; nothing draws until a
    # subclass calls `staged_ready()` at the end of its on_mount. (The base has
    # no on_mount of its own: Textual calls each class's handler in the MRO.)

    def staged_ready(self) -> None:
        self._ready = True
        self.sync_staged(force=True)

    def on_screen_resume(self) -> None:
        # The other staged screen may have edited, or the engine reloaded, while we were away.
        if self._ready:
            self.sync_staged()
            self.show_snapshot(self.view.snapshot())

    def show_snapshot(self, snapshot: EngineSnapshot) -> None:
        """Called by the app's refresh loop; subclasses show live counters from it."""
        self.sync_staged()

    def sync_staged(self, *, force: bool = False) -> None:
        """Redraw what depends on the working copy, only when it changed."""
        if not self._ready:
            return
        self.session.follow(self.view.running_config)
        if force or self.session.revision != self._shown_revision:
            self._shown_revision = self.session.revision
            self._update_status()
            if hasattr(self.app, "unapplied"):
                self.app.unapplied = self.session.unapplied  # type: ignore[attr-defined]
            self.staged_changed()

    def staged_changed(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _update_status(self) -> None:
        try:
            status = self.query_one("#staged-status", Static)
        except Exception:
            return
        session = self.session
        validation = session.validate()
        file = session.path or self.view.config_path
        path = str(file) if file else "(no file: built-in demo — ctrl+s saves as)"
        parts = [path]
        if self.view.read_only:
            parts.append("read-only")
        if not validation.ok:
            parts.append(f"✗ staged config has {len(validation.errors)} error(s): {validation.errors[0]}")
        if session.unapplied:
            diff = session.diff()
            count = len(diff.routes) + len(diff.entries) + len(diff.sections)
            breaking = len(diff.breaking_tests)
            parts.append(f"● {count} unapplied change(s)" + (f", {breaking} test(s) would fail" if breaking else "")
                         + ("  — A apply · R revert" if not self.view.read_only else ""))
        elif session.unsaved and session.path is not None:
            parts.append("● applied, not saved — ctrl+s saves")
        else:
            parts.append("✓ staged = running")
        status.update("  ·  ".join(parts))
        status.set_class(session.unapplied, "-unapplied")
        status.set_class(not validation.ok, "-error")

    # -- read-only -------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in self.MUTATING and self.view.read_only:
            return False  # hidden from the footer and never run
        return True

    # -- apply / save / revert -----------------------------------------------------

    def action_apply(self) -> None:
        if self.applying:
            self.notify("An apply is already in progress.", severity="warning")
            return
        validation = self.session.validate()
        if not validation.ok:
            self._report_errors("Cannot apply: the staged config does not validate", validation.errors)
            return
        diff = self.session.diff()
        if diff.empty:
            self.notify("Nothing to apply: the staged config is the running one.")
            return
        blocking = self.new_certificate_errors(validation.config)
        if blocking:
            self._report_errors("Cannot apply: certificate errors (see the Certificates screen)", blocking)
            return

        def answered(confirmed: bool | None) -> None:
            if confirmed:
                self.apply_staged()

        warnings = [f"{format_loc(w.loc)}: {w.message}" for w in validation.warnings]
        self.app.push_screen(DiffDialog(diff, warnings=warnings), answered)

    @work(exclusive=True, group="apply", exit_on_error=False)
    async def apply_staged(self) -> None:
        """Hand the staged config to the engine; it validates, compiles and swaps atomically."""
        self.applying = True
        try:
            config = self.session.build()
            await self.view.apply(config)
        except ConfigError as exc:
            self._report_errors("The engine refused the config; the running one keeps serving", exc.errors)
            return
        except Exception as exc:  # EngineError, PermissionError (read-only), OSError binding a listener
            self.notify(f"Apply failed; the running config keeps serving: {exc}", title="Apply", severity="error", timeout=10)
            return
        finally:
            self.applying = False
        running = self.view.running_config
        self.session.mark_applied(running if running is not None else config)
        self.notify("Applied: the engine now routes with the staged config; established connections keep flowing.",
                    title="Apply")
        self.sync_staged()

    def action_save(self) -> None:
        if self.session.path is None:
            # The built-in demo has no file: ask where to write it.
            def chosen(path: str | None) -> None:
                if path:
                    self.save_to(Path(path))

            self.app.push_screen(SaveAsDialog(), chosen)
            return
        self.save_to(None)

    def save_to(self, path: Path | None) -> None:
        try:
            backup = self.session.save(path)
        except ConfigError as exc:
            self._report_errors("Not saved: the staged config does not validate", exc.errors)
            return
        except OSError as exc:
            self.notify(f"Not saved: {exc}", title="Save", severity="error")
            return
        kept = f"; previous file kept as {backup.name}" if backup else ""
        still = " (not applied yet: A applies)" if self.session.unapplied else ""
        self.notify(f"Saved {self.session.path}{kept}{still}", title="Save")
        self.sync_staged()

    def action_revert(self) -> None:
        if not self.session.unapplied:
            self.notify("Nothing to revert: the staged config is the running one.")
            return

        def answered(confirmed: bool | None) -> None:
            if confirmed:
                self.session.revert()
                self.notify("Reverted to the running config.")
                self.sync_staged()

        count = len(self.session.diff().routes)
        self.app.push_screen(ConfirmDialog("Revert staged changes?",
                                           f"Drop every staged edit ({count} route change(s)) and return to the running config.",
                                           confirm_label="Revert"), answered)

    def new_certificate_errors(self, config: Config | None) -> list[CertFinding]:
        """Certificate errors the staged config has and the running one does not.

        Certificate errors block an apply, but one the engine already runs with
        (a certificate that expired since) must not stop every other change.
        """
        if config is None or not config.certificates:
            return []
        now = datetime.fromtimestamp(self.view.now(), timezone.utc)
        staged = [f for f in validate_certificates(config, now) if f.severity == "error"]
        if not staged:
            return []
        running = {(f.loc, f.message) for f in validate_certificates(self.view.running_config, now) if f.severity == "error"}
        return [f for f in staged if (f.loc, f.message) not in running]

    def _report_errors(self, title: str, errors: list) -> None:
        shown = "\n".join(str(e) for e in errors[:6])
        more = f"\n… and {len(errors) - 6} more" if len(errors) > 6 else ""
        self.notify(shown + more, title=title, severity="error", timeout=10)
