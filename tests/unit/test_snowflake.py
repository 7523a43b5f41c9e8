from broker.snowflake import EPOCH_MS, MAX_NODE, Snowflake, id_time_ms


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_ids_are_unique_and_increasing_within_one_millisecond():
    gen = Snowflake(5, Clock(1_700_000_000.0))
    ids = [gen.next_id() for _ in range(10_000)]  # more than 4096 per ms: borrows
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)


def test_node_bits_and_time():
    clock = Clock(1_700_000_000.123)
    one = Snowflake(1, clock).next_id()
    two = Snowflake(MAX_NODE, clock).next_id()
    assert one != two
    assert (one >> 12) & 0x3FF == 1
    assert (two >> 12) & 0x3FF == MAX_NODE
    assert id_time_ms(one) == 1_700_000_000_123
    assert id_time_ms(one) > EPOCH_MS


def test_clock_going_backwards_never_repeats_an_id():
    clock = Clock(1_700_000_000.0)
    gen = Snowflake(3, clock)
    first = gen.next_id()
    clock.t -= 5
    second = gen.next_id()
    assert second > first
