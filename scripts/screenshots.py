"""Save SVG screenshots of every screen into screenshots/ (the README shows them).

    python scripts/screenshots.py            # replay data: the same pictures on every run
    python scripts/screenshots.py --live     # the built-in demo on loopback, with generated traffic

Both build the app with `create_app`, exactly as `sniui` does, and drive it
headlessly with `App.run_test`; nothing is drawn by hand.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# Clock times on the logs screen are local time; pin the zone so the pictures do not depend on the machine.
os.environ["TZ"] = "UTC"
time.tzset()

SIZE = (120, 40)

# (file name, keys pressed from the dashboard)
SHOTS = (
    ("dashboard", ()),
    ("dashboard-grouped", ("g", "g", "g", "enter")),
    ("dashboard-detail", ("slash", *"k8s", "enter", "enter")),
    ("dashboard-servers", ("u",)),
    ("dashboard-80x24", ()),
    ("routes", ("2",)),
    ("routes-test-match", ("2", "t", *"shop-staging-8443.k8s.example.com")),
    ("certificates", ("3",)),
    ("logs", ("4",)),
    ("help", ("question_mark",)),
    ("dashboard-light", ("T",)),
)


async def shoot(make_app, out: Path, settle) -> list[Path]:
    saved = []
    for name, keys in SHOTS:
        app = make_app()
        size = (80, 24) if name.endswith("80x24") else SIZE
        async with app.run_test(size=size) as pilot:
            await settle(app, pilot)
            for key in keys:
                await pilot.press(key)
            await pilot.pause(0.3)
            if app.screen.__class__.__name__ == "LogsScreen":
                app.screen.show_snapshot(None)
                await pilot.pause(0.1)
            await pilot.pause()
            path = out / f"{name}.svg"
            path.write_text(app.export_screenshot(title=f"sniui — {name}"), encoding="utf-8")
            saved.append(path)
    return saved


async def replay(out: Path) -> list[Path]:
    from sniui.ui.app import create_app
    from sniui.ui.replay_data import NOW, replay_view

    # Real (deterministic) certificate files, so the certificates screen shows a loaded certificate.
    from tests.ui.cert_material import write_material

    with tempfile.TemporaryDirectory(prefix="sniui-shots-") as tmp:
        base = Path(tmp)
        write_material(base, datetime.fromtimestamp(NOW, timezone.utc))
        shutil.copy(base / "certs" / "good.pem", base / "certs" / "example.pem")
        shutil.copy(base / "certs" / "good.key", base / "certs" / "example.key")

        async def settle(app, pilot):
            await pilot.pause()

        return await shoot(lambda: create_app(replay_view(base_dir=base), refresh_interval=None), out, settle)


async def live(out: Path) -> list[Path]:
    from sniui.demo import build_demo
    from sniui.engine.engine import Engine
    from sniui.ui.app import create_app
    from sniui.ui.view import LiveEngineView

    demo = await build_demo(0, terminate=True)
    engine = Engine(demo.config)
    await engine.start()
    port = engine.bound_addresses[0][1]
    stop = asyncio.Event()

    from sniui.ui.demo_session import demo_traffic

    async def traffic():
        while not stop.is_set():  # the TUI's own demo traffic (held connections + bursts), until the shots are done
            await demo_traffic(demo, port)

    generator = asyncio.ensure_future(traffic())
    try:
        async def settle(app, pilot):
            deadline = asyncio.get_running_loop().time() + 10
            while not engine.snapshot().totals.accepted and asyncio.get_running_loop().time() < deadline:
                await pilot.pause(0.1)
            await pilot.pause(2.5)  # let a few rate samples accumulate for the sparklines

        view = LiveEngineView(engine)
        return await shoot(lambda: create_app(view, demo_text=demo.instructions_for(port)), out, settle)
    finally:
        stop.set()
        generator.cancel()
        await asyncio.gather(generator, return_exceptions=True)
        await engine.stop()
        await demo.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--live", action="store_true", help="use the built-in demo with generated traffic")
    parser.add_argument("--out", default=str(ROOT / "screenshots"), help="output folder (default: screenshots/)")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    saved = asyncio.run(live(out) if args.live else replay(out))
    for path in saved:
        print(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
