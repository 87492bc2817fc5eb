"""The Textual app: modes per screen, one refresh loop, the event follower, and `run_tui`.

`create_app(view)` is the one factory: the CLI, the tests and the screenshot
script all build the app through it, so they all see the same app.
"""

from __future__ import annotations

import asyncio
import sys
from collections import deque
from pathlib import Path
from typing import Iterable

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.reactive import reactive
from textual.screen import ModalScreen, Screen

from sniui.engine.model import EngineSnapshot, Event
from sniui.ui.view import EngineView

# 3 Hz: fresh enough to watch traffic, cheap enough to leave the core to the relay.
REFRESH_INTERVAL = 1 / 3
# Under load, two thirds of that (2 Hz): the app paints on the loop that relays, and at a thousand
# new connections a second every refresh repaints a table of new rows (bench/ui_cost.py, "churn").
# The timer ticks twice per refresh; a busy router skips one tick more.
TICKS_PER_REFRESH, TICKS_PER_BUSY_REFRESH = 2, 3
BUSY_NEW_CONNECTIONS_PER_S = 200
BUSY_LIVE_CONNECTIONS = 2000
EVENT_HISTORY = 5000
SETTLE_HEAP_AFTER = 3.0   # seconds after start: the first screens are mounted

MODES = ("dashboard", "routes", "certificates", "logs")
# The footer shows the four screen keys as one "1234 screens" item, so 80 columns still fit the screen's own keys.
SCREENS = Binding.Group("screens", compact=True)


class SniuiApp(App[int]):
    TITLE = "sniui"
    CSS_PATH = "theme.tcss"
    ENABLE_COMMAND_PALETTE = True
    BINDINGS = [
        Binding("1", "switch_mode('dashboard')", "Dashboard", id="app.dashboard", tooltip="Live connections and health",
                group=SCREENS),
        Binding("2", "switch_mode('routes')", "Routes", id="app.routes", tooltip="Edit and test the routes",
                group=SCREENS),
        Binding("3", "switch_mode('certificates')", "Certs", id="app.certificates",
                tooltip="Certificates, their routes and findings", group=SCREENS),
        Binding("4", "switch_mode('logs')", "Logs", id="app.logs", tooltip="The engine's event stream", group=SCREENS),
        Binding("question_mark", "help", "Help", id="app.help", key_display="?", tooltip="Every key, on one screen"),
        Binding("T", "toggle_theme", "Light/dark", id="app.theme", show=False, tooltip="Switch light and dark themes"),
        Binding("t", "demo_traffic", "Demo traffic", id="app.demo_traffic", show=False,
                tooltip="Send a burst of demo requests through the router"),
        Binding("q", "quit", "Quit", id="app.quit", tooltip="Quit sniui (the router stops with it)"),
    ]

    # Set by the routes/certificates screens while the edited config differs from the running one.
    unapplied: reactive[bool] = reactive(False)

    def __init__(self, view: EngineView, *, demo_text: str | None = None, demo_traffic=None,
                 refresh_interval: float | None = REFRESH_INTERVAL, follow_events: bool = True):
        super().__init__()
        self.view = view
        self.demo_text = demo_text
        self._demo_traffic = demo_traffic
        self._refresh_interval = refresh_interval
        self._ticks = 0
        self._ticks_per_refresh = TICKS_PER_REFRESH
        self._follow = follow_events
        self.events: deque[Event] = deque(maxlen=EVENT_HISTORY)
        self.events_seen = 0       # total ever received: the logs screen tracks what it has shown by this
        self.events_dropped = 0
        for mode in MODES:
            self.add_mode(mode, lambda mode=mode: self._build_screen(mode))

    def _build_screen(self, mode: str) -> Screen:
        if mode == "dashboard":
            from sniui.ui.screens.dashboard import DashboardScreen

            return DashboardScreen(self.view)
        if mode == "logs":
            from sniui.ui.screens.logs import LogsScreen

            return LogsScreen(self.view)
        from sniui.ui.screens.placeholder import missing_screen

        try:
            if mode == "routes":
                from sniui.ui.screens.routes import RoutesScreen

                return RoutesScreen(self.view)
            from sniui.ui.screens.certificates import CertificatesScreen

            return CertificatesScreen(self.view)
        except ImportError as exc:  # a screen still being written must not take the app down
            return missing_screen(mode, exc)

    async def on_mount(self) -> None:
        self.theme = "textual-dark"
        await self.switch_mode("dashboard")
        if self._refresh_interval:
            # set_interval: Textual keeps it at a fixed rate and stops it when the app closes.
            self.set_interval(self._refresh_interval / TICKS_PER_REFRESH, self._refresh_tick, name="refresh")
        if self._follow:
            self.follow_events()
        if self.demo_text:
            self.notify("Demo running on loopback. Press ? for the curl lines, t for a burst of traffic.",
                        title="sniui demo", timeout=10)
        if self._demo_traffic is not None:
            self.action_demo_traffic()

    # -- the one refresh loop ----------------------------------------------------

    def _refresh_tick(self) -> None:
        self._ticks += 1
        if self._ticks < self._ticks_per_refresh:
            return
        self._ticks = 0
        snapshot = self.refresh_screen()
        busy = snapshot is not None and is_busy(snapshot)
        self._ticks_per_refresh = TICKS_PER_BUSY_REFRESH if busy else TICKS_PER_REFRESH

    def refresh_screen(self) -> EngineSnapshot | None:
        """Hand the active screen a fresh snapshot, unless a dialog is up or the screen is paused."""
        if not self.is_running or not self.screen_stack:
            return None  # starting up or shutting down
        screen = self.screen
        if isinstance(screen, ModalScreen) or getattr(screen, "paused", False):
            return None
        if not screen.is_mounted or not screen.is_attached:
            return None  # the screen's widgets may not all be there yet
        show = getattr(screen, "show_snapshot", None)
        if show is None:
            return None
        snapshot = self.view.snapshot()
        show(snapshot)
        return snapshot

    @work(exclusive=True, group="events")
    async def follow_events(self) -> None:
        """Keep the recent event history for the logs screen; publishing in the engine never waits on us."""
        subscription = self.view.subscribe()
        try:
            async for event in subscription:
                self.events.append(event)
                self.events_seen += 1
                self.events_dropped = getattr(subscription, "dropped", 0)
        finally:
            close = getattr(subscription, "close", None)
            if close is not None:
                result = close()
                if asyncio.iscoroutine(result):
                    await result

    # -- actions -------------------------------------------------------------------

    def action_help(self) -> None:
        from sniui.ui.screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    async def action_quit(self) -> None:
        """Quit; with staged edits not yet applied or saved, ask first rather than drop them silently."""
        if not self.unapplied:
            self.exit(0)
            return
        from sniui.ui.widgets.confirm import ConfirmDialog

        def answered(confirmed: bool | None) -> None:
            if confirmed:
                self.exit(0)

        self.push_screen(ConfirmDialog("Quit with unapplied changes?",
                                       "The staged edits are neither applied nor saved; quitting drops them.",
                                       confirm_label="Quit"), answered)

    def action_toggle_theme(self) -> None:
        self.theme = "textual-light" if self.theme == "textual-dark" else "textual-dark"

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "demo_traffic":
            return self._demo_traffic is not None and not self.view.read_only
        return True

    def action_demo_traffic(self) -> None:
        if self._demo_traffic is not None:
            self._run_demo_traffic()

    @work(exclusive=True, group="demo-traffic")  # pressing t again restarts the burst rather than stacking
    async def _run_demo_traffic(self) -> None:
        report = await self._demo_traffic()
        summary = getattr(report, "summary", None)
        if callable(summary):
            self.notify(summary(), title="demo traffic", timeout=4)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """The palette offers the same actions as the keys: screens, then the active screen's bindings."""
        titles = {"dashboard": "Dashboard", "routes": "Routes", "certificates": "Certificates", "logs": "Logs"}
        for mode, title in titles.items():
            yield SystemCommand(f"Go to {title}", f"Switch to the {title.lower()} screen",
                                lambda mode=mode: self.switch_mode(mode))
        yield SystemCommand("Help: keys", "Every key binding on one screen", self.action_help)
        for command in screen_commands(screen):
            yield command
        yield SystemCommand("Toggle light/dark", "Switch between the light and dark themes", self.action_toggle_theme)
        if self.check_action("demo_traffic", ()):
            yield SystemCommand("Demo traffic", "Send a burst of demo requests through the router",
                                self.action_demo_traffic)
        yield from super().get_system_commands(screen)


def is_busy(snapshot: EngineSnapshot) -> bool:
    """Enough traffic that the dashboard should refresh less often and leave the loop to the relay."""
    rates = snapshot.rates
    return (len(snapshot.connections) >= BUSY_LIVE_CONNECTIONS
            or bool(rates) and rates[-1].connections >= BUSY_NEW_CONNECTIONS_PER_S)


def screen_commands(screen: Screen) -> Iterable[SystemCommand]:
    """One palette command per binding the screen offers now (read-only hides the changing ones)."""
    seen: set[str] = set()
    extra = getattr(screen, "palette_commands", None)
    if callable(extra):
        for command in extra():
            seen.add(command.title)
            yield command
    for binding in screen.BINDINGS:
        if not isinstance(binding, Binding) or not binding.description or binding.action in seen:
            continue
        action, _, _ = binding.action.partition("(")
        if screen.check_action(action, ()) is not True:
            continue
        seen.add(binding.action)
        title = binding.tooltip or binding.description
        yield SystemCommand(f"{binding.description} ({_key_label(binding)})", title,
                            # run_action is a coroutine: call_later awaits it on the screen's own queue
                            lambda action=binding.action: screen.call_later(screen.run_action, action))


def _key_label(binding: Binding) -> str:
    key = binding.key_display or binding.key.split(",")[0]
    return {"slash": "/", "question_mark": "?", "escape": "esc"}.get(key, key)


def create_app(view: EngineView, *, demo_text: str | None = None, demo_traffic=None,
               refresh_interval: float | None = REFRESH_INTERVAL, follow_events: bool = True) -> SniuiApp:
    """The one way to build the app: the CLI, the tests and the screenshot script all call this.

    `demo_traffic`: an async callable that sends a burst of demo requests (live demo only).
    `refresh_interval=None` turns the refresh loop off, for tests that drive refreshes themselves.
    """
    return SniuiApp(view, demo_text=demo_text, demo_traffic=demo_traffic, refresh_interval=refresh_interval,
                    follow_events=follow_events)


# -- the command line's entry point --------------------------------------------------


def run_tui(config_path: Path | None, read_only: bool = False) -> int:
    """`sniui` and `sniui -c FILE`: the engine and the app share one event loop in this process
    (uvloop's, as headless: engine/loops.py)."""
    from sniui.engine import loops

    try:
        return loops.run(_run(config_path, read_only), lambda text: print(f"sniui: {text}", file=sys.stderr))
    except KeyboardInterrupt:
        return 130


async def _run(config_path: Path | None, read_only: bool) -> int:
    from sniui.config import ConfigError, load_config
    from sniui.engine.engine import Engine, EngineError
    from sniui.engine.heap import settle_heap
    from sniui.ui.view import LiveEngineView

    demo = None
    if config_path is None:
        from sniui.demo import build_demo

        demo = await build_demo()
        config = demo.config
    else:
        try:
            config = load_config(config_path)
        except (ConfigError, OSError) as exc:
            print(f"sniui: {exc}", file=sys.stderr)
            return 2
    engine = Engine(config)
    try:
        try:
            await engine.start()
        except EngineError as exc:
            if demo is None:
                print(f"sniui: {exc}", file=sys.stderr)
                return 1
            # The demo's usual port is taken (another sniui?): let the system pick one instead.
            await demo.close()
            demo = await build_demo(0)
            engine = Engine(demo.config)
            await engine.start()
        demo_text = traffic = None
        if demo is not None:
            port = engine.bound_addresses[0][1]
            demo_text = demo.instructions_for(port)
            from sniui.ui.demo_session import demo_traffic

            traffic = lambda: demo_traffic(demo, port)  # noqa: E731
        labels = demo.server_names if demo is not None else None
        view = LiveEngineView(engine, config_path=config_path, read_only=read_only, address_labels=labels,
                              after_apply=settle_heap)
        app = create_app(view, demo_text=demo_text, demo_traffic=traffic)
        # By then the app has built its screens: keep them, the config and the modules out of
        # every later full collection (see sniui/engine/heap.py).
        settle = asyncio.get_running_loop().call_later(SETTLE_HEAP_AFTER, settle_heap)
        try:
            await app.run_async()
        finally:
            settle.cancel()
        return app.return_code or 0
    finally:
        await engine.stop()
        if demo is not None:
            await demo.close()
