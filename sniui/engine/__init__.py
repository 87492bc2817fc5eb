"""The routing engine: the only asyncio networking code. Knows nothing of any front end."""

from sniui.engine.engine import Engine
from sniui.engine.events import Subscription
from sniui.engine.listener import EngineError

__all__ = ["Engine", "EngineError", "Subscription"]
