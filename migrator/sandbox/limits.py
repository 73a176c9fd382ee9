"""Throttling as Microsoft publishes it (concepts/throttling-limits.md), and injected faults.
Both are switchable, so tests can provoke each rule and benchmarks can run without them."""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections import defaultdict, deque
from collections.abc import Iterator
from dataclasses import dataclass, field

from migrator.sandbox.http import DropConnection, GraphError


@dataclass
class ThrottleSettings:
    enabled: bool = True
    mailbox_concurrency: int = 4  # Outlook: 4 concurrent requests per app per mailbox
    mailbox_requests: int = 10_000  # Outlook: per app per mailbox per window
    mailbox_window: float = 600.0
    teams_messages_per_second: int = 20  # GET chat/channel message: per app per tenant
    retry_after: int = 1  # seconds the sandbox asks a throttled client to wait


@dataclass
class FaultSettings:
    rate: float = 0.0  # share of API requests that fail
    kinds: tuple[str, ...] = ("503", "504", "drop")
    seed: int = 0
    _rng: random.Random = field(default_factory=random.Random, repr=False)

    def __post_init__(self) -> None:
        self._rng.seed(self.seed)


class Limiter:
    def __init__(self, throttle: ThrottleSettings | None = None, faults: FaultSettings | None = None) -> None:
        self.throttle = throttle or ThrottleSettings()
        self.faults = faults or FaultSettings()
        self._lock = threading.Lock()
        self._in_flight: dict[tuple[str, str], int] = defaultdict(int)
        self._mailbox_log: dict[tuple[str, str], deque[float]] = defaultdict(deque)
        self._teams_log: dict[str, deque[float]] = defaultdict(deque)
        self.peak_in_flight: dict[tuple[str, str], int] = defaultdict(int)
        self.latency = 0.0  # seconds each admitted mailbox request takes, as a real server's would
        self.throttled: dict[str, int] = defaultdict(int)
        self.injected: dict[str, int] = defaultdict(int)  # faults answered, by kind

    def _throttled(self, rule: str, message: str) -> GraphError:
        self.throttled[rule] += 1
        return GraphError(429, "ApplicationThrottled", message, {"Retry-After": str(self.throttle.retry_after)})

    @contextlib.contextmanager
    def mailbox(self, app: str, mailbox: str) -> Iterator[None]:
        """Admits one request to a mailbox, or raises 429 as Exchange Online does."""
        key = (app, mailbox)
        settings = self.throttle
        with self._lock:
            if settings.enabled:
                if self._in_flight[key] >= settings.mailbox_concurrency:
                    raise self._throttled("MailboxConcurrency", "Application is over its MailboxConcurrency limit.")
                log, now = self._mailbox_log[key], time.monotonic()
                while log and log[0] <= now - settings.mailbox_window:
                    log.popleft()
                if len(log) >= settings.mailbox_requests:
                    raise self._throttled("MailboxRequests", "Application is over its request limit for this mailbox.")
                log.append(now)
            self._in_flight[key] += 1
            self.peak_in_flight[key] = max(self.peak_in_flight[key], self._in_flight[key])
        try:
            if self.latency:
                time.sleep(self.latency)
            yield
        finally:
            with self._lock:
                self._in_flight[key] -= 1

    def teams_message_read(self, app: str) -> None:
        settings = self.throttle
        if not settings.enabled:
            return
        with self._lock:
            log, now = self._teams_log[app], time.monotonic()
            while log and log[0] <= now - 1.0:
                log.popleft()
            if len(log) >= settings.teams_messages_per_second:
                raise self._throttled("TeamsMessages", "Application is over its rate limit for reading Teams messages.")
            log.append(now)

    def maybe_fail(self) -> None:
        faults = self.faults
        if faults.rate <= 0:
            return
        with self._lock:
            hit = faults._rng.random() < faults.rate
            kind = faults._rng.choice(faults.kinds) if hit else ""
            if kind:
                self.injected[kind] += 1
        if kind == "503":
            raise GraphError(503, "serviceNotAvailable", "The service is temporarily unavailable.", {"Retry-After": "1"})
        if kind == "504":
            raise GraphError(504, "UnknownError", "Gateway timeout.")
        if kind == "drop":
            raise DropConnection()
