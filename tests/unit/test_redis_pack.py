"""pack() sends what redis-py would: RESP bulk strings, ints in decimal."""

import pytest

from broker.redis_batch import pack


def test_pack_matches_resp():
    assert pack("HMGET", "k", b"\x00\xff", 42, -1) == (
        b"*5\r\n$5\r\nHMGET\r\n$1\r\nk\r\n$2\r\n\x00\xff\r\n$2\r\n42\r\n$2\r\n-1\r\n"
    )
    assert pack("GET", "é") == b"*2\r\n$3\r\nGET\r\n$2\r\n\xc3\xa9\r\n"


def test_pack_refuses_a_bool():
    with pytest.raises(TypeError):
        pack("SET", "k", True)
