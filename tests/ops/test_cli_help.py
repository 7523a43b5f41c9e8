import logging
import subprocess
import sys

import pytest

from broker.cli import EXIT_CONFIG, EXIT_FAILURE, _parser, main
from broker.redis_server import free_port
from tests.conftest import REPO_ROOT


@pytest.fixture(autouse=True)
def restore_logging():
    """main() configures the root logger; put the test runner's back."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def subparsers():
    parser = _parser()
    (sub,) = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"]
    return parser, sub


def test_every_subcommand_has_help_and_a_description():
    parser, sub = subparsers()
    assert parser.description
    assert "Exit codes" in parser.epilog
    helps = {action.dest: action.help for action in sub._choices_actions}
    assert set(helps) == set(sub.choices)
    for name, subparser in sub.choices.items():
        assert helps[name], name
        assert subparser.description, name


@pytest.mark.parametrize("command", sorted(subparsers()[1].choices))
def test_subcommand_help_exits_0(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: jindou {command}")


def test_top_level_help_lists_every_subcommand():
    result = subprocess.run(
        [sys.executable, "-m", "broker", "--help"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0
    for command in subparsers()[1].choices:
        assert command in result.stdout


def test_usage_error_exits_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["no-such-command"])
    assert exc.value.code == EXIT_CONFIG


def test_bad_configuration_exits_2(monkeypatch, capsys):
    monkeypatch.setenv("JINDOU_SHARDS", "0")
    assert main(["status"]) == EXIT_CONFIG
    assert "JINDOU_SHARDS" in capsys.readouterr().err


def test_api_without_manager_token_exits_2(monkeypatch, capsys):
    monkeypatch.delenv("JINDOU_MANAGER_TOKEN", raising=False)
    monkeypatch.delenv("JINDOU_MANAGER_TOKEN_FILE", raising=False)
    assert main(["api"]) == EXIT_CONFIG
    assert "JINDOU_MANAGER_TOKEN" in capsys.readouterr().err


def test_unreachable_redis_exits_1_with_one_line(monkeypatch, capsys):
    monkeypatch.setenv("JINDOU_REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")
    assert main(["status"]) == EXIT_FAILURE
    err = capsys.readouterr().err
    assert err.startswith("jindou: ")
    assert "Traceback" not in err
