"""A token bucket per client address: the gateway's request-rate limit."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """``rate`` requests per second per key, in bursts of up to ``burst``.

    :meth:`admit` answers how long the caller must wait (0.0: admitted), which the
    gateway sends as ``Retry-After``.  Keys whose bucket has refilled are forgotten once
    more than ``max_keys`` are held, so many addresses cannot grow the table for good.
    """

    def __init__(
        self,
        *,
        rate: float,
        burst: int,
        max_keys: int = 65536,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"rate and burst must be positive, got {rate} and {burst}")
        self._rate, self._burst, self._max_keys, self._clock = rate, float(burst), max_keys, clock
        self._buckets: dict[str, _Bucket] = {}

    def admit(self, key: str) -> float:
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self._max_keys:
                self._forget_idle(now)
            bucket = self._buckets[key] = _Bucket(self._burst, now)
        bucket.tokens = min(self._burst, bucket.tokens + (now - bucket.updated) * self._rate)
        bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / self._rate

    def retry_after_s(self, wait: float) -> int:
        """``Retry-After`` is whole seconds, at least one."""
        return max(1, math.ceil(wait))

    def _forget_idle(self, now: float) -> None:
        full_after = self._burst / self._rate
        self._buckets = {k: b for k, b in self._buckets.items() if now - b.updated < full_after}
        if len(self._buckets) >= self._max_keys:  # all busy: forget the oldest half
            keep = sorted(self._buckets.items(), key=lambda kv: kv[1].updated)
            self._buckets = dict(keep[len(keep) // 2 :])

    def __len__(self) -> int:
        return len(self._buckets)
