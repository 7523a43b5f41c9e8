"""The services of one api process, built once and shared by HTTP and WebSocket."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError

from broker.channel_admin import ChannelAdmin
from broker.conversation_records import ConversationRecords
from broker.conversations import ConversationService
from broker.durability import open_gate
from broker.history import HistoryService
from broker.keys import Keys
from broker.messages import MessageService
from broker.node import SnowflakeLease, new_node_id
from broker.redis_conn import check_deployment, connect, keys_for
from broker.settings import Settings
from broker.store import Store
from broker.user_admin import UserAdmin
from broker.users import UserTokens

log = logging.getLogger(__name__)


@dataclass
class Services:
    settings: Settings
    redis: Redis
    keys: Keys
    store: Store
    lease: SnowflakeLease
    messages: MessageService
    history: HistoryService
    users: UserTokens
    channels: ChannelAdmin
    user_admin: UserAdmin
    node_id: str
    conversations: ConversationService


async def open_services(settings: Settings) -> Services:
    redis = connect(settings.redis_url)
    keys = keys_for(settings)
    try:
        await check_deployment(redis, keys)
        gate = await open_gate(redis, settings)
        lease = SnowflakeLease(redis, keys, settings.node_lease_ms)
        ids = await lease.acquire()
    except BaseException:
        await redis.aclose()
        raise
    store = Store(redis, keys, gate, retention=settings.retention_maxlen)
    return Services(
        settings=settings,
        redis=redis,
        keys=keys,
        store=store,
        lease=lease,
        messages=MessageService(store, settings, ids),
        history=HistoryService(store, keys),
        users=UserTokens(redis, keys),
        channels=ChannelAdmin(
            redis,
            keys,
            store.scripts,
            ConversationRecords(redis, keys),
            settings.max_list,
        ),
        user_admin=UserAdmin(redis, keys, settings.max_list),
        node_id=new_node_id(),
        conversations=ConversationService(redis, keys, settings.large_channel),
    )


async def close_services(services: Services) -> None:
    try:
        await services.lease.release()
    except (RedisError, OSError):
        # Shutting down during an outage: the lease simply expires.
        log.warning("could not release the snowflake lease; it will expire")
    finally:
        await services.redis.aclose()
