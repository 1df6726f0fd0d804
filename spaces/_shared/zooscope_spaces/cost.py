"""What one request will cost, decided before it runs, and who runs when.

A Space is one small shared machine. Each handler counts the work a request asks for from its
sizes (prompts × tokens × forwards, images × models, ...), turns it into seconds with the
model's own speed (``measure_speed``: one timed forward when the model is loaded), and
``SCHEDULER.admit`` then

* refuses it with a message naming the estimate and what to lower when it is above
  ``LIMITS["seconds"]`` (nothing has run yet);
* runs it at once, beside anything else, when it is *light* (≤ ``LIMITS["light_seconds"]``;
  at most ``LIMITS["light_slots"]`` at a time);
* otherwise waits for the one *heavy* slot (at most ``LIMITS["heavy_waiting"]`` waiting, or
  the Space says it is busy) — so a large request never blocks a small one.

The estimate is deliberately simple (linear in tokens, a per-forward overhead), so it is shown
to the visitor as an estimate, not a promise.
"""
from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass

from zoo.errors import UserError

from .core import LIMITS


@dataclass(frozen=True)
class Speed:
    """A model's measured speed: seconds per token in a batched forward, and per forward call."""

    per_token: float
    per_call: float

    def seconds(self, tokens: float, calls: float = 1) -> float:
        return tokens * self.per_token + calls * self.per_call


@dataclass(frozen=True)
class Estimate:
    seconds: float
    what: str  # "4 prompts × 64 tokens, 3 analyses": shown in the messages
    lower: str = "fewer prompts or tokens"  # what the visitor can lower

    @property
    def light(self) -> bool:
        return self.seconds <= LIMITS["light_seconds"]


def measure_speed(forward, tokens: int = 64, repeats: int = 2) -> Speed:
    """Time ``forward(n)`` (one forward over ``n`` tokens) for n = 1 and n = ``tokens``, best of
    ``repeats``: the slope is the per-token cost, the intercept the per-call overhead."""
    def best(n: int) -> float:
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            forward(n)
            times.append(time.perf_counter() - start)
        return min(times)

    forward(min(tokens, 8))  # warm-up: first calls allocate
    one, many = best(1), best(tokens)
    per_token = max(many - one, 1e-9) / max(tokens - 1, 1)
    return Speed(per_token=per_token, per_call=max(one - per_token, 0.0))


class Scheduler:
    """Light requests run side by side; heavy ones one at a time, in a separate line."""

    def __init__(self):
        self._light = threading.BoundedSemaphore(LIMITS["light_slots"])
        self._heavy = threading.Lock()
        self._waiting = 0
        self._count = threading.Lock()
        self.running: dict[str, int] = {"light": 0, "heavy": 0}  # for tests and the log

    def check(self, estimate: Estimate) -> None:
        if estimate.seconds > LIMITS["seconds"]:
            raise UserError(
                f"this request would take about {estimate.seconds:,.0f} s here ({estimate.what}); this Space "
                f"runs requests of at most {LIMITS['seconds']} s: choose {estimate.lower}")

    @contextmanager
    def admit(self, estimate: Estimate, progress=None):
        """Check the estimate, wait for a slot of the right kind, then run the ``with`` body."""
        self.check(estimate)
        kind = "light" if estimate.light else "heavy"
        if kind == "light":
            gate = self._light
        else:
            with self._count:
                if self._waiting >= LIMITS["heavy_waiting"]:
                    raise UserError(f"the Space is busy with {self._waiting} large requests; try again later, or "
                                    f"a smaller request (under about {LIMITS['light_seconds']} s runs at once)")
                self._waiting += 1
            gate = self._heavy
            if progress is not None and self._heavy.locked():
                progress(0.0, desc=f"waiting for a large request ahead (this one: about {estimate.seconds:.0f} s)")
        try:
            gate.acquire()
        finally:
            if kind == "heavy":
                with self._count:
                    self._waiting -= 1
        with self._count:
            self.running[kind] += 1
        try:
            yield kind
        finally:
            with self._count:
                self.running[kind] -= 1
            gate.release()


SCHEDULER = Scheduler()
