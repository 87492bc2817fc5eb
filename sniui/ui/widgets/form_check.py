"""Editor dialogs that validate as you type, without holding up the event loop.

The engine and the UI share one event loop, and a check can be slow: a whole
config validated with thousands of routes, or certificate files read and
handed to OpenSSL. So the check runs in a thread worker on a snapshot of the
form's values, and only the answer to the newest request is shown; answers
to older keystrokes are dropped (the newest request also carries which fields
were touched, so an older answer for the same text is not enough). Submitting checks once more, synchronously,
so what is staged is exactly what was validated.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from textual import work
from textual.screen import ModalScreen
from textual.widgets import Button, Input

ResultType = TypeVar("ResultType")


class CheckedForm(ModalScreen[ResultType], Generic[ResultType]):
    """Subclasses give `current()` (the values), `compute()` (thread-safe), `show()` (UI),
    `is_valid()` of a computed result and `result_value()` (what the dialog returns)."""

    OK_BUTTON = "form-ok"                          # the id of the button that submits
    SUBMIT_REFUSED = "Fix the marked fields first."

    def __init__(self) -> None:
        super().__init__()
        self._requested = 0    # id of the newest check asked for
        self._answered = -1    # id of the check whose answer is on screen
        self._show_all = False  # after a submit attempt, every field shows its messages, touched or not

    def is_valid(self, result: Any) -> bool:
        return bool(result.ok)

    def result_value(self) -> ResultType:  # pragma: no cover - abstract
        raise NotImplementedError

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == self.OK_BUTTON:
            self.action_submit()
        else:
            self.action_cancel()

    def action_submit(self) -> None:
        self._show_all = True
        if not self.is_valid(self.check_now()):
            self.notify(self.SUBMIT_REFUSED, severity="error")
            return
        self.dismiss(self.result_value())

    def action_cancel(self) -> None:
        self.dismiss(None)  # type: ignore[arg-type]

    def current(self) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def compute(self, values: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def show(self, values: Any, result: Any) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def settled(self) -> bool:
        """True once the messages on screen answer the newest request (tests wait on this)."""
        return self._answered == self._requested

    def request_check(self) -> None:
        self._requested += 1
        self._check_in_thread(self._requested, self.current())

    def check_now(self) -> Any:
        self._requested += 1
        values = self.current()
        result = self.compute(values)
        self._deliver(self._requested, values, result)
        return result

    @work(thread=True, exclusive=True, group="form-check", exit_on_error=False)
    def _check_in_thread(self, request: int, values: Any) -> None:
        result = self.compute(values)
        try:
            self.app.call_from_thread(self._deliver, request, values, result)
        except RuntimeError:
            pass  # the app is shutting down: nobody to show it to

    def _deliver(self, request: int, values: Any, result: Any) -> None:
        if request != self._requested or not self.is_attached:
            return  # an answer to older keystrokes
        self._answered = request
        self.show(values, result)
