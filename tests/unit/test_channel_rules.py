"""Pure rules of issue 3: sender refusals decided outside the channel, list checks,
conversation record format, read access of person channels."""

import pytest

from broker.access import is_party, require_self
from broker.channel_admin import checked_channel, checked_flags, checked_uids
from broker.channels import person_channel_id
from broker.conversation_records import conversation_field, new_record
from broker.errors import ApiError
from broker.http.routing import MANAGER, Caller
from broker.send_permissions import SenderFacts, sender_refusal


def reason(facts, person):
    refusal = sender_refusal(facts, person=person)
    return None if refusal is None else (refusal.status, refusal.reason_code)


def test_sender_refusals():
    plain = SenderFacts(
        sender_is_system=False, sender_banned=False, sender_send_banned=False
    )
    assert reason(plain, person=True) is None
    banned = SenderFacts(
        sender_is_system=False, sender_banned=True, sender_send_banned=True
    )
    assert reason(banned, person=False) == (403, 19)
    muted = SenderFacts(
        sender_is_system=False, sender_banned=False, sender_send_banned=True
    )
    assert reason(muted, person=False) == (403, 25)
    blocked = SenderFacts(
        sender_is_system=False,
        sender_banned=False,
        sender_send_banned=False,
        in_recipient_blacklist=True,
    )
    assert reason(blocked, person=True) == (403, 4)
    assert reason(blocked, person=False) is None  # groups check lists in the script
    to_system = SenderFacts(
        sender_is_system=False,
        sender_banned=False,
        sender_send_banned=False,
        recipient_is_system=True,
        in_recipient_blacklist=True,
    )
    assert reason(to_system, person=True) is None
    system = SenderFacts(
        sender_is_system=True, sender_banned=True, sender_send_banned=True
    )
    assert reason(system, person=True) is None


def test_checked_uids_dedupes_and_limits():
    assert checked_uids(["a", "b", "a"], "uids", 3) == ["a", "b"]
    with pytest.raises(ApiError, match="more than 2"):
        checked_uids(["a", "b", "c"], "uids", 2)
    for bad in ("", "a@b", "a{b", "x\n"):
        with pytest.raises(ApiError):
            checked_uids([bad], "uids", 10)


def test_checked_channel_and_flags():
    assert checked_channel("g", 2) == (2, "g")
    for channel_id, channel_type in (("g", 0), ("g", 99), ("", 2), ("a#b", 2)):
        with pytest.raises(ApiError) as err:
            checked_channel(channel_id, channel_type)
        assert err.value.status == 400
    assert checked_flags({"ban": 1, "large": 0}) == {"ban": 1, "large": 0}
    with pytest.raises(ApiError, match="ban"):
        checked_flags({"ban": 2})


def test_conversation_record_format():
    assert conversation_field(2, "g1") == "2:g1"
    assert new_record(7) == "7,0,0"


def test_read_access_rules():
    fake = person_channel_id("alice", "bob")
    assert is_party(fake, "alice")
    assert is_party(fake, "bob")
    assert not is_party(fake, "carol")
    require_self(MANAGER, "anyone")
    require_self(Caller("alice"), "alice")
    with pytest.raises(ApiError) as err:
        require_self(Caller("alice"), "bob")
    assert err.value.status == 403
