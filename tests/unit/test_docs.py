"""Every configuration variable is documented where an operator looks for it."""

from pathlib import Path

import msgspec

from broker.settings import ENV_PREFIX, Settings

ROOT = Path(__file__).resolve().parents[2]


def test_every_setting_is_documented():
    text = (ROOT / "README.md").read_text() + "".join(
        p.read_text() for p in (ROOT / "docs").glob("*.md")
    )
    missing = [
        ENV_PREFIX + f.name.upper()
        for f in msgspec.structs.fields(Settings)
        if ENV_PREFIX + f.name.upper() not in text
    ]
    assert missing == []


def test_readme_links_resolve():
    readme = (ROOT / "README.md").read_text()
    for target in (
        "docs/design-notes.md",
        "docs/gateway.md",
        "docs/webhooks.md",
        "docs/operations.md",
        "docs/api-channels.md",
        "BENCHMARKS.md",
    ):
        assert f"]({target})" in readme
        assert (ROOT / target).exists()
