"""Retrying a request: which faults are retried, how long to wait, how many times.

429, 5xx, time-outs and refused connections are retried with exponential backoff and jitter,
or after the server's ``Retry-After``; every other status (400, 401, 403, 404, ...) is final.
The SDKs' own retries are turned off (``max_retries=0``): theirs also retry 408/409 and obey
an ``x-should-retry`` header, and their delays are module constants a test cannot shorten.
"""

from __future__ import annotations

import email.utils
import math
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal, TypeVar

T = TypeVar("T")

FaultKind = Literal["timeout", "connection", "rate_limit", "server", "auth", "forbidden",
                    "not_found", "bad_request", "http"]
RETRYABLE: frozenset[str] = frozenset({"timeout", "connection", "rate_limit", "server"})


@dataclass(frozen=True)
class Fault:
    """A failed request, as far as retrying cares: its kind, HTTP status, the server's own
    words (one line, keys removed) and the ``Retry-After`` it asked for, in seconds."""

    kind: FaultKind
    status: int | None = None
    detail: str = ""
    retry_after: float | None = None

    @property
    def retryable(self) -> bool:
        return self.kind in RETRYABLE


class Failed(Exception):  # internal: the adapter turns it into an LLMError
    """A request that failed for good: its :class:`Fault` and the number of attempts."""

    def __init__(self, fault: Fault, attempts: int) -> None:
        super().__init__(fault.kind)
        self.fault = fault
        self.attempts = attempts


@dataclass(frozen=True)
class RetryPolicy:
    """How a failing request is retried. Refuses bad values at once."""

    retries: int = 3
    """Retries after the first attempt (so at most ``retries + 1`` requests)."""
    base_delay: float = 0.5
    """Wait before the first retry; it doubles for each one after."""
    max_delay: float = 8.0
    """Longest backoff wait (``Retry-After`` is not capped by it)."""
    max_retry_after: float = 120.0
    """A ``Retry-After`` longer than this is not waited for: the request fails at once."""
    jitter: float = 0.5
    """The backoff wait is drawn from ``[(1 - jitter) * d, d]``."""

    def __post_init__(self) -> None:
        if not 0 <= self.retries <= 10:
            raise ValueError(f"retries must be in 0..10, got {self.retries}")
        if min(self.base_delay, self.max_delay, self.max_retry_after) < 0:
            raise ValueError("delays must be >= 0")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"jitter must be in [0, 1], got {self.jitter}")

    def delay(self, retry: int, retry_after: float | None = None) -> float | None:
        """Seconds to wait before retry number ``retry`` (0 for the first): the server's
        ``retry_after`` if it gave one (None if that exceeds :attr:`max_retry_after`), else
        the jittered exponential backoff."""
        if retry_after is not None and retry_after > 0:
            return retry_after if retry_after <= self.max_retry_after else None
        d = min(self.base_delay * 2.0 ** min(retry, 60), self.max_delay)
        return d * (1.0 - self.jitter * random.random())


def retry_after_seconds(headers: Mapping[str, str] | None, *,
                        now: Callable[[], float] = time.time) -> float | None:
    """The wait a response asks for: ``retry-after-ms``, or ``Retry-After`` in seconds or as
    an HTTP date; None if absent or unreadable."""
    if not headers:
        return None
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) / scale
        except ValueError:
            continue
        return seconds if math.isfinite(seconds) else None
    value = headers.get("retry-after")
    if value:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        return max(when.timestamp() - now(), 0.0)
    return None


def with_retries(send: Callable[[], T], classify: Callable[[BaseException], Fault | None],
                 policy: RetryPolicy, *, sleep: Callable[[float], None] = time.sleep) -> T:
    """``send()``, retried per ``policy`` while ``classify`` calls its exception a retryable
    :class:`Fault`. Raises :class:`Failed` once a fault is final or the retries are spent;
    an exception ``classify`` does not know (None) propagates untouched."""
    retry = 0
    while True:
        try:
            return send()
        except Exception as exc:
            fault = classify(exc)
            if fault is None:
                raise
            wait = policy.delay(retry, fault.retry_after) if fault.retryable else None
            if wait is None or retry >= policy.retries:
                raise Failed(fault, attempts=retry + 1) from None
        sleep(wait)
        retry += 1
