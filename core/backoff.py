"""Backoff for long-running loops (drainer, scheduler, workers) riding out an outage."""

from __future__ import annotations

import random
import time
from collections.abc import Callable


class Backoff:
    """Delays that double from `first` to `cap` seconds while failures repeat, with jitter.

    Call `failed()` after each failure for the next delay and `succeeded()` once work goes
    through again, so a long outage is retried calmly and a short one barely delays anything.
    """

    def __init__(self, first: float = 0.5, cap: float = 30.0) -> None:
        self.first = first
        self.cap = cap
        self.failures = 0

    def failed(self) -> float:
        """Count a failure; return how long to wait before the next try."""
        delay = min(self.cap, self.first * 2 ** min(self.failures, 30))
        self.failures += 1
        return delay * random.uniform(0.75, 1.0)  # noqa: S311 - spreading retries, not secrets

    def succeeded(self) -> None:
        """Forget past failures."""
        self.failures = 0


def pause(seconds: float, stopping: Callable[[], bool] = lambda: False) -> None:
    """Sleep `seconds`, waking early once `stopping()` says the process is asked to stop."""
    end = time.monotonic() + seconds
    while not stopping():
        left = end - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(left, 0.2))
