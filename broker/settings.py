"""Configuration: read once from ``JINDOU_*`` environment variables.

Every field of :class:`Settings` is one variable, ``JINDOU_<FIELD>`` in upper case.
A secret may instead be given as a file path in ``JINDOU_<FIELD>_FILE``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import msgspec

ENV_PREFIX = "JINDOU_"
SECRET_FIELDS = ("manager_token", "webhook_secret")
MIN_MANAGER_TOKEN = 16
WEAK_TOKENS = frozenset({"changeme", "secret", "password", "token", "test"})


ANY_ORIGIN = "*"  # JINDOU_CORS_ORIGINS: every origin


class ConfigError(Exception):
    """Invalid configuration; the message is one line meant for the operator."""


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    redis_url: str = ""
    api_addr: str = "0.0.0.0:5001"
    ws_addr: str = "0.0.0.0:5200"
    # What GET /route tells clients (routes_route.py); empty: the gateway's own.
    external_ws_addr: str = ""
    external_wss_addr: str = ""
    # Browser origins allowed to call the API (http/cors.py); empty = no CORS.
    cors_origins: str = ""
    manager_token: str = ""
    shards: int = 128
    key_prefix: str = "jd:"
    max_payload: int = 65536
    max_body: int = 1 << 20
    max_list: int = 10_000
    dedupe_ttl: int = 86_400
    node_lease_ms: int = 30_000
    worker_lease_ms: int = 10_000
    large_channel: int = 1_000
    durability: str = "normal"
    retention_maxlen: int = 0  # keep at most this many messages per channel; 0 = all
    log_level: str = "INFO"
    log_format: str = "text"
    uvloop: bool = True
    shutdown_grace: float = 20.0
    worker_metrics_addr: str = ""  # host:port of a worker's ops server; empty = off
    webhook_url: str = ""
    webhook_secret: str = ""
    webhook_events: str = ""
    # Delivery tuning (docs/webhooks.md); the defaults give 8 attempts over ~10 min.
    webhook_max_attempts: int = 8
    webhook_backoff_base: float = 5.0
    webhook_timeout: float = 10.0
    webhook_concurrency: int = 16
    webhook_batch_size: int = 100
    webhook_batch_interval: float = 0.5
    webhook_reclaim_after: float = 15.0
    webhook_compress_over: int = 1000
    webhook_dedupe_ttl: int = 300
    # False: this worker does not send webhooks (others do; e.g. dedicated egress).
    webhook_sender: bool = True
    # WebSocket gateway limits (docs/gateway.md)
    node_heartbeat_ms: int = 2_000
    ws_auth_timeout: float = 2.0
    ws_max_frame: int = 262_144
    ws_queue_messages: int = 1_000
    ws_queue_bytes: int = 1 << 20
    ws_socket_sndbuf: int = 262_144  # kernel send buffer per socket; 0 = OS default
    ws_send_rate: float = 20.0
    ws_send_burst: int = 40
    ws_request_rate: float = 200.0
    ws_request_burst: int = 400
    ws_retry_ms: int = 5_000
    ws_retry_max: int = 5
    # Per client IP (S9); 0 = off. Generous enough for a NAT of many users.
    ws_max_conns_per_ip: int = 1_000
    ws_conn_rate_per_ip: float = 50.0
    ws_conn_burst_per_ip: int = 100
    # HTTP sends with a user's own credentials, per uid and api process; 0 = off.
    user_send_rate: float = 20.0
    user_send_burst: int = 40

    def __post_init__(self) -> None:
        if not 1 <= self.shards <= 16384:
            raise ValueError("JINDOU_SHARDS must be between 1 and 16384")
        if self.max_payload < 1:
            raise ValueError("JINDOU_MAX_PAYLOAD must be positive")
        if self.retention_maxlen < 0:
            raise ValueError("JINDOU_RETENTION_MAXLEN must be 0 (keep all) or more")
        if self.dedupe_ttl < 1:
            raise ValueError("JINDOU_DEDUPE_TTL must be positive")
        if self.durability not in ("normal", "strict"):
            raise ValueError("JINDOU_DURABILITY must be 'normal' or 'strict'")
        if min(self.ws_max_frame, self.ws_queue_messages, self.ws_queue_bytes) < 1:
            raise ValueError("JINDOU_WS_* limits must be positive")
        if min(self.ws_max_conns_per_ip, self.ws_conn_rate_per_ip) < 0:
            raise ValueError("JINDOU_WS_*_PER_IP limits must be 0 (off) or more")
        if self.log_format not in ("text", "json"):
            raise ValueError("JINDOU_LOG_FORMAT must be 'text' or 'json'")
        if any(c in self.key_prefix for c in "{} "):
            raise ValueError("JINDOU_KEY_PREFIX may not contain braces or spaces")
        for name in ("api_addr", "ws_addr"):
            split_addr(getattr(self, name))
        if self.worker_metrics_addr:
            split_addr(self.worker_metrics_addr)
        parse_origins(self.cors_origins)
        for name, scheme in (
            ("external_ws_addr", "ws://"),
            ("external_wss_addr", "wss://"),
        ):
            value = getattr(self, name)
            if value and not value.startswith(scheme):
                raise ValueError(f"JINDOU_{name.upper()} must be a {scheme} URL")
        if self.user_send_rate < 0 or self.user_send_burst < 1:
            raise ValueError(
                "JINDOU_USER_SEND_RATE must be 0 (off) or more and "
                "JINDOU_USER_SEND_BURST at least 1"
            )
        if self.shutdown_grace <= 0:
            raise ValueError("JINDOU_SHUTDOWN_GRACE must be positive")
        self._check_webhooks()

    def _check_webhooks(self) -> None:
        if self.webhook_url and not self.webhook_url.startswith(
            ("http://", "https://")
        ):
            raise ValueError("JINDOU_WEBHOOK_URL must be an http:// or https:// URL")
        unknown = set(webhook_event_names(self.webhook_events)) - WEBHOOK_EVENTS
        if unknown:
            raise ValueError(
                f"JINDOU_WEBHOOK_EVENTS has unknown events {sorted(unknown)}; "
                f"known: {', '.join(sorted(WEBHOOK_EVENTS))}"
            )
        if self.webhook_max_attempts < 1 or self.webhook_concurrency < 1:
            raise ValueError(
                "JINDOU_WEBHOOK_MAX_ATTEMPTS and JINDOU_WEBHOOK_CONCURRENCY "
                "must be at least 1"
            )
        if not 1 <= self.webhook_batch_size <= 10_000:
            raise ValueError("JINDOU_WEBHOOK_BATCH_SIZE must be between 1 and 10000")
        for name in (
            "webhook_backoff_base",
            "webhook_timeout",
            "webhook_batch_interval",
            "webhook_reclaim_after",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"JINDOU_{name.upper()} must be positive")
        if self.webhook_compress_over < 0 or self.webhook_dedupe_ttl < 0:
            raise ValueError(
                "JINDOU_WEBHOOK_COMPRESS_OVER and JINDOU_WEBHOOK_DEDUPE_TTL "
                "may not be negative"
            )


WEBHOOK_EVENTS = frozenset({"msg.notify", "msg.offline", "user.onlinestatus"})


def webhook_event_names(value: str) -> list[str]:
    """``"msg.notify, msg.offline"`` → the names; empty means every event."""
    return [name.strip() for name in value.split(",") if name.strip()]


def parse_origins(value: str) -> frozenset[str]:
    """``JINDOU_CORS_ORIGINS`` as a set; ``*`` alone means any origin."""
    origins = frozenset(o.strip().rstrip("/") for o in value.split(",") if o.strip())
    if ANY_ORIGIN in origins and len(origins) > 1:
        raise ValueError("JINDOU_CORS_ORIGINS is either * or a list of origins")
    for origin in origins - {ANY_ORIGIN}:
        if not origin.startswith(("http://", "https://")):
            raise ValueError(
                f"JINDOU_CORS_ORIGINS: {origin!r} is not an http(s) origin"
            )
    return origins


def split_addr(addr: str) -> tuple[str, int]:
    """``"host:port"`` → ``(host, port)``; raises ValueError with a clear message."""
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{addr!r} is not a host:port address")
    return host.strip("[]") or "0.0.0.0", int(port)  # noqa: S104


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Build Settings from the environment; raise ConfigError on any bad value."""
    env = os.environ if env is None else env
    raw: dict[str, str] = {}
    for field in msgspec.structs.fields(Settings):
        name = ENV_PREFIX + field.name.upper()
        if name in env:
            raw[field.name] = env[name]
        elif field.name in SECRET_FIELDS and name + "_FILE" in env:
            raw[field.name] = _read_secret(env[name + "_FILE"], name + "_FILE")
    try:
        return msgspec.convert(raw, Settings, strict=False)
    except (msgspec.ValidationError, ValueError) as exc:
        raise ConfigError(f"invalid configuration: {_env_name(str(exc))}") from None


def require_manager_token(settings: Settings) -> None:
    """The API refuses to start with no, a short or a well-known manager token."""
    token = settings.manager_token
    if not token:
        raise ConfigError(
            "JINDOU_MANAGER_TOKEN is not set; the API refuses to run open"
        )
    if len(token) < MIN_MANAGER_TOKEN or token.lower() in WEAK_TOKENS:
        raise ConfigError(
            f"JINDOU_MANAGER_TOKEN must be at least {MIN_MANAGER_TOKEN} characters "
            "and not a well-known default"
        )


def _read_secret(path: str, name: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError as exc:
        raise ConfigError(f"cannot read {name} ({path}): {exc.strerror}") from None


def _env_name(message: str) -> str:
    """Turn msgspec's ``$.field`` paths into the environment variable's name."""
    for field in msgspec.structs.fields(Settings):
        message = message.replace(f"`$.{field.name}`", ENV_PREFIX + field.name.upper())
    return message
