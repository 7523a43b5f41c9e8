"""compose.yaml and Dockerfile, checked without Docker (no engine on CI)."""

import re
import tomllib

import msgspec
import pytest
import yaml

from broker.cli import _parser
from broker.settings import ENV_PREFIX, Settings, load_settings, split_addr
from tests.conftest import REPO_ROOT

COMPOSE = REPO_ROOT / "compose.yaml"
DOCKERFILE = REPO_ROOT / "Dockerfile"
INTERPOLATION = re.compile(r"\$\{([A-Z][A-Z0-9_]*)(:?[?-][^}]*)?\}")


def cli_subcommands() -> set[str]:
    parser = _parser()
    (sub,) = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"]
    return set(sub.choices)


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def jindou_services(compose) -> dict[str, dict]:
    return {n: s for n, s in compose["services"].items() if s.get("build")}


def interpolate(value: str) -> str:
    """What compose substitutes with nothing set: a ``:-`` default, else a strong
    stand-in (required secrets)."""

    def substitute(found: re.Match[str]) -> str:
        rule = found.group(2) or ""
        if rule.startswith((":-", "-")):
            return rule.split("-", 1)[1]
        return "x" * 32

    return INTERPOLATION.sub(substitute, value)


def test_no_version_key(compose):
    assert "version" not in compose


def test_redis_has_aof_and_a_ping_healthcheck(compose):
    redis = compose["services"]["redis"]
    command = redis["command"]
    assert command[0] == "redis-server"
    assert command[command.index("--appendonly") + 1] == "yes"
    assert redis["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]


def test_two_apis_and_two_workers_from_cli_commands(compose):
    services = jindou_services(compose)
    commands = [s["command"][0] for s in services.values()]
    assert sorted(commands) == ["api", "api", "worker", "worker"]
    assert set(commands) <= cli_subcommands()


def test_every_command_of_every_service_exists_in_the_cli(compose):
    for name, service in jindou_services(compose).items():
        assert service["command"][0] in cli_subcommands(), name
    entrypoint = re.search(r'^ENTRYPOINT \["(\w+)"\]', DOCKERFILE.read_text(), re.M)
    assert entrypoint is not None
    scripts = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"][
        "scripts"
    ]
    assert scripts[entrypoint.group(1)] == "broker.cli:main"
    cmd = re.search(r'^CMD \["(\w+)"\]', DOCKERFILE.read_text(), re.M)
    assert cmd is not None
    assert cmd.group(1) in cli_subcommands()


def test_every_variable_is_a_setting_and_loads(compose):
    fields = {ENV_PREFIX + f.name.upper() for f in msgspec.structs.fields(Settings)}
    for name, service in jindou_services(compose).items():
        env = {k: interpolate(str(v)) for k, v in service["environment"].items()}
        unknown = {k for k in env if k.startswith(ENV_PREFIX)} - fields
        assert not unknown, (name, unknown)
        settings = load_settings(env)  # raises ConfigError on a bad value
        assert settings.redis_url == "redis://redis:6379/0"
        assert settings.log_format == "json"


def test_dependencies_healthchecks_and_grace(compose):
    for name, service in jindou_services(compose).items():
        assert service["depends_on"]["redis"]["condition"] == "service_healthy", name
        settings = load_settings(
            {k: interpolate(str(v)) for k, v in service["environment"].items()}
        )
        grace = int(service["stop_grace_period"].removesuffix("s"))
        assert grace > settings.shutdown_grace, name
        probe = " ".join(service["healthcheck"]["test"])
        url = re.search(r"http://127\.0\.0\.1:(\d+)(/\S+?)'", probe)
        assert url is not None, name
        assert url.group(2) == "/readyz"
        addr = (
            settings.api_addr
            if service["command"][0] == "api"
            else settings.worker_metrics_addr
        )
        assert split_addr(addr)[1] == int(url.group(1)), name


def test_apis_publish_distinct_host_ports(compose):
    host_ports = []
    for service in jindou_services(compose).values():
        if service["command"][0] == "api":
            host_ports += [p.split(":")[0] for p in service["ports"]]
    assert len(host_ports) == 4
    assert len(set(host_ports)) == len(host_ports)


def test_dockerfile_builds_the_package_it_copies():
    text = DOCKERFILE.read_text()
    assert re.search(r"^FROM python:3\.11-slim$", text, re.M)
    assert re.search(r"pip install [^\n]*\.(\s|$)", text)
    copied = set(re.findall(r"^COPY (.+) \S+$", text, re.M))
    sources = {src for line in copied for src in line.split()}
    for src in sources:
        assert (REPO_ROOT / src).exists(), src
    packages = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"][
        "hatch"
    ]["build"]["targets"]["wheel"]["packages"]
    assert set(packages) <= sources
    assert "pyproject.toml" in sources
