"""Which store a pool uses: ``--store``, ``$CREDROT_STORE``, the config's ``store:``."""

from __future__ import annotations

from pathlib import Path

import pytest

from credrot.config import parse_config
from credrot.errors import ConfigError
from credrot.remote.settings import parse, resolve


def test_the_file_store_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CREDROT_STORE", raising=False)
    assert resolve() is None
    assert resolve("file") is None


def test_the_option_wins_over_the_variable_and_the_config(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("store: redis://cfg:6379/0\n")
    monkeypatch.setenv("CREDROT_CONFIG", str(config))
    monkeypatch.delenv("CREDROT_STORE", raising=False)
    assert resolve().url == "redis://cfg:6379/0"  # type: ignore[union-attr]
    assert parse_config(config.read_text()) == {}  # the tools loader accepts the key
    monkeypatch.setenv("CREDROT_STORE", "redis://env:6379/1")
    assert resolve().url == "redis://env:6379/1"  # type: ignore[union-attr]
    assert resolve("redis://opt:6379/2?prefix=team-a").prefix == "team-a"  # type: ignore[union-attr]
    assert resolve("file") is None


def test_a_password_is_never_shown() -> None:
    got = parse("redis://ci:s3cret-pw@redis.lan:6380/0?prefix=ci")
    assert got.shown == "redis://ci:***@redis.lan:6380/0"
    assert "s3cret" not in repr(got.shown)
    assert got.url == "redis://ci:s3cret-pw@redis.lan:6380/0"


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://host:6379", "expected file or a URL like redis://"),
        ("redis://u:pw@h/0?prefix=no spaces", "prefix must be"),
        ("mysql://u:topsecret@h/0", "mysql://u:***@h/0"),
    ],
)
def test_a_bad_store_is_one_clear_line(url: str, says: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse(url)
    assert says in str(err.value)
    assert "topsecret" not in str(err.value)
    assert "\n" not in str(err.value)
