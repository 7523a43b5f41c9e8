"""Hypothesis state machine over the conversation model (R11), with real worker
processes: send / retry / clearUnread / setUnread / delete / join / leave /
kill-worker / redeliver, checked against tests/workers/model.py after every drain."""

import asyncio
import itertools

import msgspec
import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from broker.channels import person_channel_id
from broker.messages import http_sender
from broker.protocol import Header, SendRequest, StoredMessage
from broker.redis_conn import keys_for
from broker.services import close_services, open_services
from tests.workers.harness import SLOW_ONLY, wait_drained
from tests.workers.model import Model, Sent
from tests.workers.traffic import check_against_model

USERS = 4
CHANNELS = st.one_of(st.just("group"), st.integers(0, USERS - 1))
_examples = itertools.count()


class Env:
    """What every example shares: one event loop, services, worker processes."""

    def __init__(self, settings, workers):
        self.loop = asyncio.new_event_loop()
        self.settings = settings
        self.keys = keys_for(settings)
        self.workers = workers
        self.services = self.run(open_services(settings))
        self.redis = self.services.redis

    def run(self, coro):
        return self.loop.run_until_complete(coro)

    def close(self):
        async def cleanup():
            async for key in self.redis.scan_iter(match=f"{self.settings.key_prefix}*"):
                await self.redis.delete(key)
            await close_services(self.services)

        self.run(cleanup())
        self.loop.close()


class ConversationMachine(RuleBasedStateMachine):
    env: Env

    def __init__(self):
        super().__init__()
        n = next(_examples)
        self.users = [f"x{n}u{i}" for i in range(USERS)]
        self.group = f"x{n}g"
        self.model = Model()
        self.sent: list[tuple[SendRequest, int]] = []
        self.kills = 0

    # -- helpers ------------------------------------------------------------------
    def channel(self, user: int, target):
        """(channel_type, channel_id as the user names it, stored id)."""
        if target == "group":
            return 2, self.group, self.group
        other = self.users[target]
        return 1, other, person_channel_id(self.users[user], other)

    def members(self) -> set[str]:
        return self.model.channel(2, self.group).members

    # -- rules --------------------------------------------------------------------
    @rule(user=st.integers(0, USERS - 1), to=CHANNELS, red_dot=st.booleans())
    def send(self, user, to, red_dot):
        uid = self.users[user]
        if to == user or (to == "group" and uid not in self.members()):
            return  # no chat with oneself; group senders are members
        channel_type, channel_id, stored = self.channel(user, to)
        req = SendRequest(
            header=Header(red_dot=int(red_dot)),
            from_uid=uid,
            channel_id=channel_id,
            channel_type=channel_type,
            payload=b"m",
            client_msg_no=f"c{len(self.sent)}",
        )
        result = self.env.run(self.env.services.messages.send(req, http_sender(uid)))
        self.sent.append((req, result.message_seq))
        self.model.sent(
            Sent(channel_type, stored, uid, result.message_seq, int(red_dot))
        )

    @precondition(lambda self: self.sent)
    @rule(data=st.data())
    def retry(self, data):
        req, seq = data.draw(st.sampled_from(self.sent))
        result = self.env.run(
            self.env.services.messages.send(req, http_sender(req.from_uid))
        )
        assert result.message_seq == seq  # de-duplicated, nothing new stored

    @rule(user=st.integers(0, USERS - 1), to=CHANNELS)
    def clear_unread(self, user, to):
        if to == user:
            return
        channel_type, channel_id, stored = self.channel(user, to)
        uid = self.users[user]
        self.env.run(
            self.env.services.conversations.clear_unread(
                uid, channel_id, channel_type, None
            )
        )
        self.model.clear_unread(uid, channel_type, stored)

    @rule(user=st.integers(0, USERS - 1), to=CHANNELS, unread=st.integers(0, 4))
    def set_unread(self, user, to, unread):
        if to == user:
            return
        channel_type, channel_id, stored = self.channel(user, to)
        uid = self.users[user]
        self.env.run(
            self.env.services.conversations.set_unread(
                uid, channel_id, channel_type, unread, None
            )
        )
        self.model.set_unread(uid, channel_type, stored, unread)

    @rule(user=st.integers(0, USERS - 1), to=CHANNELS)
    def delete(self, user, to):
        if to == user:
            return
        channel_type, channel_id, stored = self.channel(user, to)
        uid = self.users[user]
        self.env.run(
            self.env.services.conversations.delete(uid, channel_id, channel_type)
        )
        self.model.delete(uid, channel_type, stored)

    @rule(user=st.integers(0, USERS - 1))
    def join(self, user):
        from tests.workers.harness import join

        uid = self.users[user]
        self.env.run(join(self.env.redis, self.env.settings, self.group, [uid]))
        self.model.join(self.group, [uid])

    @rule(user=st.integers(0, USERS - 1))
    def leave(self, user):
        from tests.workers.harness import leave

        uid = self.users[user]
        self.env.run(leave(self.env.redis, self.env.settings, self.group, [uid]))
        self.model.leave(self.group, [uid])

    @precondition(lambda self: self.kills < 1)
    @rule()
    def kill_worker(self):
        self.kills += 1
        workers = self.env.workers
        workers.kill(workers.alive[0])
        workers.start()

    @precondition(lambda self: self.sent)
    @rule(data=st.data())
    def redeliver(self, data):
        """A dispatch entry delivered again, as after a crash before its ack and
        before the channel's fanned mark: every effect must come out the same."""
        req, seq = data.draw(st.sampled_from(self.sent))
        stored = (
            req.channel_id
            if req.channel_type == 2
            else person_channel_id(req.from_uid, req.channel_id)
        )
        self.env.run(self._redeliver(req.channel_type, stored, seq))
        message = next(
            m
            for m in self.model.channel(req.channel_type, stored).messages
            if m.seq == seq
        )
        self.model.apply(message)

    async def _redeliver(self, channel_type, stored, seq):
        keys, redis = self.env.keys, self.env.redis
        channel = keys.channel(channel_type, stored)
        [(_, fields)] = await redis.xrange(channel.log, f"{seq}-0", f"{seq}-0")
        message = msgspec.msgpack.decode(fields[b"m"], type=StoredMessage)
        await redis.hdel(channel.meta, "fanned")
        await redis.xadd(
            keys.dispatch(channel.shard),
            {
                "s": seq,
                "t": channel_type,
                "c": stored,
                "f": message.from_uid,
                "ts": message.timestamp_ms,
                "o": "",
            },
        )

    # -- the check ----------------------------------------------------------------
    @invariant()
    def matches_model(self):
        env = self.env
        env.run(wait_drained(env.redis, env.settings, timeout=30, workers=env.workers))
        problems = env.run(
            check_against_model(env.services, env.redis, env.keys, self.model)
        )
        assert problems == []


def run_machine(settings, workers, examples: int, steps: int):
    workers.start()
    workers.start()
    env = Env(settings, workers)
    ConversationMachine.env = env
    try:
        test_case = ConversationMachine.TestCase
        test_case.settings = hsettings(
            max_examples=examples,
            stateful_step_count=steps,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )
        test_case().runTest()
    finally:
        env.close()


@pytest.mark.timeout(300)
def test_conversation_model(settings, workers):
    run_machine(settings, workers, examples=20, steps=12)


@pytest.mark.slow
@SLOW_ONLY
@pytest.mark.timeout(1800)
def test_conversation_model_long(settings, workers):
    run_machine(settings, workers, examples=200, steps=40)
