"""Editor dialogs that validate as you type, without holding up the event loop.

The engine and the UI share one event loop, and a check can be slow: a whole
config validated with thousands of routes, or certificate files read and
handed to OpenSSL. So the check runs in a thread worker on a snapshot of the
form's values, and only the answer for the newest values is shown; answers
for older keystrokes are dropped. Submitting checks once more, synchronously,
so what is staged is exactly what was validated.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from textual import work
from textual.screen import ModalScreen

ResultType = TypeVar("ResultType")


class CheckedForm(ModalScreen[ResultType], Generic[ResultType]):
    """Subclasses give `current()` (the values), `compute()` (thread-safe) and `show()` (UI)."""

    def __init__(self) -> None:
        super().__init__()
        self._wanted: Any = object()
        self._checked: Any = object()

    def current(self) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def compute(self, values: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def show(self, values: Any, result: Any) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def settled(self) -> bool:
        """True once the shown messages belong to the values in the fields (tests wait on this)."""
        return self._checked == self._wanted

    def request_check(self) -> None:
        self._wanted = self.current()
        self._check_in_thread(self._wanted)

    def check_now(self) -> Any:
        values = self.current()
        result = self.compute(values)
        self._wanted = values
        self._deliver(values, result)
        return result

    @work(thread=True, exclusive=True, group="form-check", exit_on_error=False)
    def _check_in_thread(self, values: Any) -> None:
        result = self.compute(values)
        try:
            self.app.call_from_thread(self._deliver, values, result)
        except RuntimeError:
            pass  # the app is shutting down: nobody to show it to

    def _deliver(self, values: Any, result: Any) -> None:
        if values != self._wanted or not self.is_attached:
            return  # an answer for older keystrokes
        self._checked = values
        self.show(values, result)
