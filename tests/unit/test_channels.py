import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker.channels import (
    InvalidId,
    check_channel_type,
    check_id,
    display_channel_id,
    other_party,
    person_channel_id,
    shard_of,
    storage_channel_id,
)

uids = st.text(
    alphabet=st.characters(
        blacklist_characters="@#&{}", blacklist_categories=("Cs",), min_codepoint=0x21
    ),
    min_size=1,
    max_size=20,
)


def test_person_id_puts_larger_crc32_first():
    a, b = "alice", "bob"
    first = a if zlib.crc32(a.encode()) > zlib.crc32(b.encode()) else b
    assert person_channel_id(a, b).split("@")[0] == first


@given(uids, uids)
def test_person_id_is_the_same_for_either_sender(a, b):
    assert person_channel_id(a, b) == person_channel_id(b, a) or zlib.crc32(
        a.encode()
    ) == zlib.crc32(b.encode())
    fake = person_channel_id(a, b)
    assert other_party(fake, a) == b
    assert display_channel_id(fake, 1, b) == a


def test_equal_hashes_put_the_second_argument_first():
    # WuKongIM's documented collision rule: same CRC32 → to_uid first.
    assert person_channel_id("x", "x") == "x@x"


@pytest.mark.parametrize(
    "bad",
    ["", "\ud800", "a@b", "a#b", "a&b", "{a}", "a\x00", "a\nb", "x" * 129, "é" * 65],
)
def test_check_id_refuses(bad):
    with pytest.raises(InvalidId):
        check_id(bad, "uid")


def test_check_id_accepts_normal_ids():
    assert check_id("user:42-é", "uid") == "user:42-é"
    assert check_id("x" * 128, "uid") == "x" * 128


def test_unknown_channel_type_refused():
    with pytest.raises(InvalidId):
        check_channel_type(0)
    with pytest.raises(InvalidId):
        check_channel_type(13)
    assert check_channel_type(2) == 2


def test_storage_id_of_person_channel_accepts_fake_ids_only_when_canonical():
    fake = person_channel_id("alice", "bob")
    assert storage_channel_id("bob", 1, "alice") == fake
    assert storage_channel_id(fake, 1, "") == fake
    a, b = fake.split("@")
    with pytest.raises(InvalidId):
        storage_channel_id(f"{b}@{a}", 1, "")
    with pytest.raises(InvalidId):
        storage_channel_id("bob", 1, "")  # needs the viewer's uid


def test_shard_is_crc32_of_type_and_id():
    assert shard_of(2, "g1", 128) == zlib.crc32(b"2:g1") % 128
