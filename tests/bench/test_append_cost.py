"""`python -m bench.append_cost`: each variant leaves out exactly the part it names
(or the tool stops), and a run measures Redis' CPU per append of what it stored."""

import pytest

from bench.append_cost import (
    AS_SHIPPED,
    VARIANTS,
    MissingLine,
    Variant,
    measure_once,
    variant_source,
    without_lines,
)
from bench.redis_binary import bench_redis_server
from broker.scripts import append_source

DISPATCH = next(v for v in VARIANTS if "dispatch" in v.name)


def test_without_lines_leaves_out_whole_lines_only():
    source = "local a = 1\nredis.call('SETBIT', k, 1, 1)\nreturn a"
    assert without_lines(source, ("redis.call('SETBIT', k, 1, 1)",)) == (
        "local a = 1\nreturn a"
    )
    with pytest.raises(MissingLine):
        without_lines(source, ("redis.call('SETBIT', k",))  # a part of a line


def test_every_variant_matches_the_script_as_it_is():
    shipped = append_source()
    assert variant_source(AS_SHIPPED) == shipped
    for variant in VARIANTS:
        source = variant_source(variant)  # raises if a line is gone from the script
        if variant.removes:
            assert len(source.split("\n")) == len(shipped.split("\n")) - len(
                variant.removes
            )


def test_a_changed_script_stops_the_tool():
    with pytest.raises(MissingLine):
        variant_source(Variant("stale", removes=("redis.call('DEL', log)",)))


@pytest.mark.timeout(60)
async def test_a_run_stores_every_message_and_the_variant_takes_effect():
    shipped = await measure_once(AS_SHIPPED, 300, bench_redis_server())
    assert shipped["stored"] == 300
    assert shipped["dispatched"] == 300
    assert shipped["redis_cpu_us_per_append"] > 0
    without_dispatch = await measure_once(DISPATCH, 300, bench_redis_server())
    assert without_dispatch["stored"] == 300
    assert without_dispatch["dispatched"] == 0
