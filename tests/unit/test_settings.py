import pytest

from broker.settings import ConfigError, load_settings, require_manager_token


def test_defaults():
    s = load_settings({})
    assert (s.api_addr, s.ws_addr, s.shards, s.key_prefix) == (
        "0.0.0.0:5001",
        "0.0.0.0:5200",
        128,
        "jd:",
    )
    assert (s.max_payload, s.dedupe_ttl) == (65536, 86400)


def test_values_are_converted_from_strings():
    s = load_settings(
        {"JINDOU_SHARDS": "16", "JINDOU_DEDUPE_TTL": "60", "JINDOU_UVLOOP": "false"}
    )
    assert (s.shards, s.dedupe_ttl, s.uvloop) == (16, 60, False)


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"JINDOU_SHARDS": "many"}, "JINDOU_SHARDS"),
        ({"JINDOU_SHARDS": "0"}, "JINDOU_SHARDS"),
        ({"JINDOU_API_ADDR": "nowhere"}, "host:port"),
        ({"JINDOU_KEY_PREFIX": "{x}"}, "JINDOU_KEY_PREFIX"),
        ({"JINDOU_DURABILITY": "sometimes"}, "JINDOU_DURABILITY"),
    ],
)
def test_invalid_values_give_one_clear_line(env, needle):
    with pytest.raises(ConfigError) as info:
        load_settings(env)
    assert needle in str(info.value)
    assert "\n" not in str(info.value)


def test_secret_from_file(tmp_path):
    path = tmp_path / "token"
    path.write_text("a-long-enough-secret-token\n")
    s = load_settings({"JINDOU_MANAGER_TOKEN_FILE": str(path)})
    assert s.manager_token == "a-long-enough-secret-token"


@pytest.mark.parametrize("token", ["", "short", "changeme", "x" * 15])
def test_weak_manager_tokens_refused(token):
    with pytest.raises(ConfigError):
        require_manager_token(load_settings({"JINDOU_MANAGER_TOKEN": token}))


def test_good_manager_token_accepted():
    require_manager_token(load_settings({"JINDOU_MANAGER_TOKEN": "x" * 16}))
