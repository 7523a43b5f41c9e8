"""Readiness: a pluggable list of checks plus a draining flag.

``/health`` says the process is alive; ``/readyz`` says it should get traffic: every
registered check passes and the process is not draining. Each part registers its own
checks (the api: Redis and scripts; the gateway: its pub/sub subscription; a worker:
its leases) with :meth:`Readiness.add`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import anyio
import msgspec
from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from broker.metrics import REDIS_ERRORS

log = logging.getLogger(__name__)

REDIS_PING_TIMEOUT = 0.5
CHECK_TIMEOUT = 2.0

# A check returns None when fine, else a short reason for the operator.
Check = Callable[[], Awaitable[str | None]]
DrainHook = Callable[[], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class ReadinessReport:
    ready: bool
    draining: bool
    failures: dict[str, str]


@dataclass
class Readiness:
    checks: dict[str, Check] = field(default_factory=dict)
    draining: bool = False
    _drain_hooks: list[DrainHook] = field(default_factory=list)

    def add(self, name: str, check: Check) -> None:
        self.checks[name] = check

    def on_drain(self, hook: DrainHook) -> None:
        """Run ``hook`` when draining starts (before the listeners close)."""
        self._drain_hooks.append(hook)

    async def start_draining(self) -> None:
        """From now on readiness fails; then run the drain hooks once."""
        if self.draining:
            return
        self.draining = True
        for hook in self._drain_hooks:
            try:
                await hook()
            except Exception:
                log.exception("a drain hook failed")

    async def report(self) -> ReadinessReport:
        failures: dict[str, str] = {}
        if self.draining:
            failures["draining"] = "shutting down"
        for name, check in self.checks.items():
            reason = await _run_check(check)
            if reason is not None:
                failures[name] = reason
        return ReadinessReport(not failures, self.draining, failures)


async def _run_check(check: Check) -> str | None:
    try:
        with anyio.fail_after(CHECK_TIMEOUT):
            return await check()
    except TimeoutError:
        return f"check took longer than {CHECK_TIMEOUT} s"
    except Exception as exc:
        return f"check failed: {type(exc).__name__}"


def redis_ping_check(redis: Redis, timeout: float = REDIS_PING_TIMEOUT) -> Check:
    async def check() -> str | None:
        try:
            with anyio.fail_after(timeout):
                await redis.ping()
        except TimeoutError:
            REDIS_ERRORS.labels("readyz").inc()
            return f"redis did not answer PING within {timeout} s"
        except (RedisError, OSError) as exc:
            REDIS_ERRORS.labels("readyz").inc()
            return f"redis unreachable: {type(exc).__name__}"
        return None

    return check


def scripts_loaded_check(
    redis: Redis, scripts: Callable[[], list[AsyncScript]]
) -> Check:
    """The Lua scripts are in Redis' script cache; loads missing ones (after a
    Redis restart the cache is empty) and fails only if loading fails."""

    async def check() -> str | None:
        wanted = scripts()
        if not wanted:
            return None
        try:
            with anyio.fail_after(REDIS_PING_TIMEOUT * 2):
                present = await redis.script_exists(*[s.sha for s in wanted])
                for script, loaded in zip(wanted, present, strict=True):
                    if not loaded:
                        await redis.script_load(script.script)
        except TimeoutError:
            REDIS_ERRORS.labels("readyz").inc()
            return "loading scripts timed out"
        except (RedisError, OSError) as exc:
            REDIS_ERRORS.labels("readyz").inc()
            return f"scripts not loaded: {type(exc).__name__}"
        return None

    return check


def lease_check(
    owned_shards: Callable[[], int], unowned_shards: Callable[[], Awaitable[int]]
) -> Check:
    """A worker is not ready while it holds no lease and some shard has no owner:
    it should be taking one (for the workers' leases module to register)."""

    async def check() -> str | None:
        if owned_shards() > 0:
            return None
        unowned = await unowned_shards()
        if unowned > 0:
            return f"holds no shard lease while {unowned} shards are unowned"
        return None

    return check


class ReadyResponse(msgspec.Struct, frozen=True, kw_only=True):
    """``/readyz``: 200 when ready, else 503 with the failing checks."""

    status: int
    msg: str
    draining: bool = False
    failures: dict[str, str] = {}


def ready_response(report: ReadinessReport) -> ReadyResponse:
    if report.ready:
        return ReadyResponse(status=200, msg="ready")
    return ReadyResponse(
        status=503,
        msg="not ready: " + ", ".join(sorted(report.failures)),
        draining=report.draining,
        failures=report.failures,
    )
