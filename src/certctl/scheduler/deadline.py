"""The time budget of one loop run, checked by the loop between batches (threads cannot be interrupted)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta


class Deadline:
    """Expires when its budget on a monotonic clock runs out, or as soon as the scheduler starts draining."""

    def __init__(
        self,
        monotonic: Callable[[], float],
        budget: timedelta | None,
        cancelled: threading.Event | None = None,
    ) -> None:
        self._monotonic = monotonic
        self._ends_at = None if budget is None else monotonic() + budget.total_seconds()
        self._cancelled = cancelled

    @classmethod
    def never(cls) -> Deadline:
        """A deadline that never expires, for callers outside the scheduler (CLI, tests)."""
        return cls(lambda: 0.0, None)

    @property
    def cancelled(self) -> bool:
        return self._cancelled is not None and self._cancelled.is_set()

    @property
    def expired(self) -> bool:
        return self.cancelled or self.remaining_seconds <= 0

    def pause(self, seconds: float) -> bool:
        """Wait up to `seconds` (never past the budget), waking early on drain; True when cancelled."""
        wait = min(seconds, self.remaining_seconds)
        if self._cancelled is None:
            threading.Event().wait(wait)
            return False
        return self._cancelled.wait(wait)

    @property
    def remaining_seconds(self) -> float:
        """Seconds left; infinity for a deadline without a budget, 0 once cancelled."""
        if self.cancelled:
            return 0.0
        if self._ends_at is None:
            return float("inf")
        return max(0.0, self._ends_at - self._monotonic())
