"""Sending through the real write path (MessageService) and checking the result."""

from __future__ import annotations

import random

import anyio

from broker.channels import person_channel_id
from broker.http.context import SERVICES
from broker.messages import http_sender
from broker.protocol import Header, SendRequest
from broker.redis_conn import keys_for
from tests.workers.harness import join
from tests.workers.model import Model, Sent


class Traffic:
    def __init__(self, api, redis, settings, model: Model, seed: int = 1) -> None:
        self.services = api.app[SERVICES]
        self.redis = redis
        self.settings = settings
        self.keys = keys_for(settings)
        self.model = model
        self.rng = random.Random(seed)
        self.pairs: list[tuple[str, str]] = []
        self.groups: dict[str, list[str]] = {}

    async def setup(
        self, users: int, pairs: int, groups: int, prefix: str = ""
    ) -> None:
        uids = [f"{prefix}u{i}" for i in range(users)]
        while len(self.pairs) < pairs:
            a, b = self.rng.sample(uids, 2)
            if (a, b) not in self.pairs and (b, a) not in self.pairs:
                self.pairs.append((a, b))
        for g in range(groups):
            name = f"{prefix}g{g}"
            members = self.rng.sample(uids, self.rng.randint(3, min(12, users)))
            self.groups[name] = members
            await join(self.redis, self.settings, name, members)
            self.model.join(name, members)

    async def send_one(
        self,
        from_uid: str,
        channel_id: str,
        channel_type: int,
        red_dot: int,
        client_msg_no: str = "",
    ) -> int:
        req = SendRequest(
            header=Header(red_dot=red_dot),
            from_uid=from_uid,
            channel_id=channel_id,
            channel_type=channel_type,
            payload=b"x",
            client_msg_no=client_msg_no,
        )
        result = await self.services.messages.send(req, http_sender(from_uid))
        stored = (
            channel_id if channel_type == 2 else person_channel_id(from_uid, channel_id)
        )
        return result.message_seq, stored

    def pick(self) -> tuple[str, str, int, int]:
        red_dot = self.rng.choice([0, 1, 1])
        if self.groups and self.rng.random() < 0.5:
            name = self.rng.choice(sorted(self.groups))
            return self.rng.choice(self.groups[name]), name, 2, red_dot
        a, b = self.rng.choice(self.pairs)
        if self.rng.random() < 0.5:
            a, b = b, a
        return a, b, 1, red_dot

    async def run(self, count: int, concurrency: int = 8, on_progress=None) -> None:
        """Send ``count`` random messages; record each in the model."""
        sent = 0
        lock = anyio.Lock()

        async def sender() -> None:
            nonlocal sent
            while True:
                async with lock:
                    if sent >= count:
                        return
                    sent += 1
                    n = sent
                from_uid, channel_id, channel_type, red_dot = self.pick()
                seq, stored = await self.send_one(
                    from_uid, channel_id, channel_type, red_dot
                )
                self.model.sent(Sent(channel_type, stored, from_uid, seq, red_dot))
                if on_progress is not None:
                    await on_progress(n)

        async with anyio.create_task_group() as tg:
            for _ in range(concurrency):
                tg.start_soon(sender)


async def sync_view(services, uid: str) -> dict[str, tuple[int, int]]:
    """field → (unread, last_msg_seq) as /conversation/sync lists them."""
    from broker.protocol_conversations import ConversationSyncRequest

    convs = await services.conversations.sync(ConversationSyncRequest(uid=uid))
    result = {}
    for c in convs:
        stored = (
            person_channel_id(uid, c.channel_id)
            if c.channel_type == 1
            else c.channel_id
        )
        result[f"{c.channel_type}:{stored}"] = (c.unread, c.last_msg_seq)
    return result


async def stored_records(redis, keys, uid: str) -> dict[str, str]:
    raw = await redis.hgetall(keys.conversations(uid))
    return {k.decode(): v.decode() for k, v in raw.items()}


async def check_against_model(services, redis, keys, model: Model, *, own_exact=True):
    """Every user's conversation records and sync view equal the model."""
    problems = []
    for uid in sorted(model.users()):
        records = await stored_records(redis, keys, uid)
        expected = model.records(uid)
        if not own_exact:
            records = {k: _strip_own(v) for k, v in records.items()}
            expected = {k: _strip_own(v) for k, v in expected.items()}
        if records != expected:
            problems.append(("records", uid, records, expected))
        view = await sync_view(services, uid)
        if view != model.listed(uid):
            problems.append(("sync", uid, view, model.listed(uid)))
    return problems


def _strip_own(value: str) -> str:
    read, _own, deleted = value.split(",")
    return f"{read},{deleted}"
