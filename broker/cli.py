"""The ``jindou`` command.

Exit codes: 0 success; 1 runtime failure; 2 invalid configuration or usage.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from bench.options import add_arguments as add_bench_arguments
from broker import __version__
from broker.logs import setup_logging
from broker.settings import ConfigError, Settings, load_settings, require_manager_token

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_CONFIG = 2

log = logging.getLogger("jindou")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jindou",
        description="Jindou IM message broker. Configuration comes from JINDOU_* "
        "environment variables (see README).",
        epilog="Exit codes: 0 success; 1 runtime failure (e.g. Redis unreachable); "
        "2 invalid configuration or usage.",
    )
    parser.add_argument("--version", action="version", version=f"jindou {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    up = sub.add_parser(
        "up",
        help="embedded mode: private redis-server + api + worker",
        description="Start a private redis-server (AOF on) in the data dir unless "
        "JINDOU_REDIS_URL is set, then one api and one worker. Prints the API URL "
        "and the manager token; Ctrl-C stops everything.",
    )
    up.add_argument(
        "--data-dir",
        type=Path,
        default=Path(".jindou"),
        help="where Redis data and the manager token live (default .jindou)",
    )
    sub.add_parser(
        "api",
        help="serve the HTTP API and WebSocket gateway",
        description="Serve the HTTP API on JINDOU_API_ADDR, with /health, /readyz, "
        "/metrics, /openapi.json and /docs, and the WebSocket gateway (WuKongIM's "
        "JSON-RPC client protocol) on JINDOU_WS_ADDR. Needs JINDOU_MANAGER_TOKEN. "
        "On SIGTERM it drains: readiness turns 503, sockets close with 1001, the "
        "listeners close, requests in flight "
        "finish within JINDOU_SHUTDOWN_GRACE seconds, then it exits 0.",
    )
    sub.add_parser(
        "worker",
        help="run a fan-out worker",
        description="Consume dispatch shards; run as many as you need. With "
        "JINDOU_WORKER_METRICS_ADDR=host:port it serves /metrics, /health and "
        "/readyz there. On SIGTERM it stops within JINDOU_SHUTDOWN_GRACE seconds.",
    )
    bench = sub.add_parser(
        "bench",
        help="run the benchmark suite (bench/, BENCHMARKS.md)",
        description="Start a private redis-server, api and worker processes and "
        "measure them next to same-run baselines; prints a table.",
    )
    add_bench_arguments(bench)
    sub.add_parser(
        "status",
        help="print shards, workers and nodes",
        description="Print the deployment's shards, workers and nodes.",
    )
    webhooks = sub.add_parser(
        "webhooks",
        help="webhook dead letters",
        description="Manage webhook deliveries that failed every attempt.",
    )
    webhooks_sub = webhooks.add_subparsers(
        dest="webhooks_command", required=True, metavar="ACTION"
    )
    replay = webhooks_sub.add_parser(
        "replay",
        help="re-send dead-lettered webhooks",
        description="Move dead letters back into the send queue under their "
        "original webhook-id; running workers deliver them.",
    )
    replay.add_argument(
        "--limit",
        type=int,
        default=None,
        help="re-send at most this many (oldest first)",
    )
    sub.add_parser(
        "rebuild-conversations",
        help="recompute every user's conversation data from the channel logs",
        description="Recompute conversation activity, own_last_seq and missing "
        "records from channel logs and membership (safe while workers run).",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings()
        if args.command == "api":
            require_manager_token(settings)
    except ConfigError as exc:
        sys.stderr.write(f"jindou: {exc}\n")
        return EXIT_CONFIG
    setup_logging(settings.log_level, settings.log_format)
    try:
        return _run(args, settings)
    except KeyboardInterrupt:
        return EXIT_OK
    except Exception as exc:  # one clear line for the operator, not a traceback
        cause = _leaf(exc)
        sys.stderr.write(f"jindou: {_describe(cause, settings)}\n")
        return EXIT_CONFIG if isinstance(cause, ConfigError) else EXIT_FAILURE


def _leaf(exc: BaseException) -> BaseException:
    """The first real error inside (nested) exception groups from task groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def _redacted(url: str) -> str:
    """The Redis URL without its password, fit for stderr and logs."""
    if not url:
        return "(unset)"
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def _describe(exc: BaseException, settings: Settings) -> str:
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import RedisError

    if isinstance(exc, RedisConnectionError):
        return f"cannot reach Redis at {_redacted(settings.redis_url)}: {exc}"
    if isinstance(exc, RedisError):
        return f"Redis error: {exc}"
    if isinstance(exc, ConfigError | OSError | RuntimeError):
        return str(exc)
    log.debug("unexpected failure", exc_info=exc)
    return f"unexpected {type(exc).__name__}: {exc}"


def _run(args: argparse.Namespace, settings: Settings) -> int:
    from broker.gc_tuning import tune_for_serving
    from broker.runtime import run

    if args.command == "up":
        from broker.embedded import run_embedded

        return run_embedded(settings, args.data_dir)
    if args.command == "api":
        from broker.serve import serve_api

        run(lambda: serve_api(settings), use_uvloop=settings.uvloop)
        return EXIT_OK
    if args.command == "worker":
        from workers.main import run_worker

        # The api tunes its collector in serve_api; full collections stalled
        # the worker's fan-out 20-50 ms too (B5).
        tune_for_serving()
        run(lambda: run_worker(settings), use_uvloop=settings.uvloop)
        return EXIT_OK
    if args.command == "bench":
        from bench.main import run_bench

        return run_bench(args)
    if args.command == "status":
        from broker.status import print_status

        run(lambda: print_status(settings), use_uvloop=False)
        return EXIT_OK
    if args.command == "webhooks":
        from workers.webhook_admin import print_replay

        run(lambda: print_replay(settings, limit=args.limit), use_uvloop=False)
        return EXIT_OK
    if args.command == "rebuild-conversations":
        from broker.rebuild import run_rebuild

        run(lambda: run_rebuild(settings), use_uvloop=False)
        return EXIT_OK
    raise AssertionError(args.command)  # pragma: no cover
