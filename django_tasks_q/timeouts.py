"""Task time limits: :class:`TimeLimit` raises :class:`TaskTimeout` inside a task that runs too long.

In a process's main thread (process workers, immediate mode in a script) the
limit is an interval timer signal, which interrupts Python code and most
blocking system calls. In any other thread it is cooperative: the exception is
delivered the next time the thread runs Python bytecode, so a task blocked in
C code is interrupted only when that call returns (process workers give hard
limits).
"""

from __future__ import annotations

import ctypes
import signal
import threading
from typing import Any

from .exceptions import TaskTimeout


class TimeLimitExceeded(TaskTimeout):
    """Raised inside the task when its time limit passes."""


class TimeLimit:
    """Context manager: raise :class:`TimeLimitExceeded` in this thread after ``seconds``."""

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds
        self.fired = False
        self._lock = threading.Lock()
        self._done = False
        self._timer: threading.Timer | None = None
        self._previous_handler: Any = None
        self._uses_signal = False

    def __enter__(self) -> TimeLimit:
        if not self.seconds:
            return self
        if threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer"):
            self._uses_signal = True
            self._previous_handler = signal.signal(signal.SIGALRM, self._on_alarm)
            signal.setitimer(signal.ITIMER_REAL, self.seconds)
        else:
            self._thread_id = threading.get_ident()
            self._timer = threading.Timer(self.seconds, self._inject)
            self._timer.daemon = True
            self._timer.start()
        return self

    def _on_alarm(self, signum: int, frame: Any) -> None:
        self.fired = True
        raise TimeLimitExceeded(f"task ran longer than its timeout of {self.seconds:g} s")

    def _inject(self) -> None:
        with self._lock:
            if self._done:
                return
            self.fired = True
            ctypes.pythonapi.PyThreadState_SetAsyncExc(
                ctypes.c_ulong(self._thread_id), ctypes.py_object(TimeLimitExceeded)
            )

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if not self.seconds:
            return
        if self._uses_signal:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self._previous_handler)
            return
        with self._lock:
            self._done = True
            if self._timer is not None:
                self._timer.cancel()
            if self.fired and exc_type is not TimeLimitExceeded:
                # The exception was set but not yet raised: take it back.
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(self._thread_id), None)
