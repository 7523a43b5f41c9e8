"""Server-made client_msg_no and epochs: WuKongIM's shape, unique, no syscalls."""

import re

from broker.messages import new_client_msg_no, new_epoch


def test_client_msg_no_has_wukongim_shape_and_is_unique():
    made = [new_client_msg_no() for _ in range(20_000)]
    assert all(re.fullmatch(r"[0-9a-f]{32}0", m) for m in made)
    assert len(set(made)) == len(made)


def test_epochs_are_16_hex_digits_and_unique():
    made = [new_epoch() for _ in range(20_000)]
    assert all(re.fullmatch(r"[0-9a-f]{16}", e) for e in made)
    assert len(set(made)) == len(made)
