"""Loading the de-identification secret; demo keys."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import pytest

from omipacs.config import DeidSettings
from omipacs.deid.keys import (
    DEMO_HEADER,
    DeidKeys,
    create_demo_key,
    filesystem_type,
    load_keys,
)
from omipacs.errors import ConfigurationError

HEX = bytes(range(1, 33)).hex()


def test_missing_key_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="no key is configured"):
        load_keys(DeidSettings(), environ={})


def test_missing_key_file_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="not found"):
        load_keys(DeidSettings(key_file=tmp_path / "absent.key"), environ={})


def test_key_from_environment_hex() -> None:
    keys = load_keys(DeidSettings(), environ={"OMIPACS_DEID_KEY": HEX})
    assert keys == DeidKeys.from_secret(bytes(range(1, 33)))
    assert not keys.demo


def test_key_env_name_comes_from_settings() -> None:
    keys = load_keys(DeidSettings(key_env="MY_KEY"), environ={"MY_KEY": HEX + "\n"})
    assert keys == DeidKeys.from_secret(bytes(range(1, 33)))


@pytest.mark.parametrize(
    "content",
    [HEX.encode(), HEX.upper().encode() + b"\n", bytes(range(40, 80)), b"  " + HEX.encode()],
)
def test_key_from_file_hex_or_raw(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "deid.key"
    path.write_bytes(content)
    path.chmod(0o600)
    keys = load_keys(DeidSettings(key_file=path), environ={"OMIPACS_DEID_KEY": "ignored"})
    assert isinstance(keys, DeidKeys) and len(keys.key_id) == 12


@pytest.mark.parametrize("secret", ["00" * 31 + "01", "ab" * 32, "short"])
def test_weak_keys_are_refused(secret: str) -> None:
    with pytest.raises(ConfigurationError, match="OMIPACS_DEID_KEY"):
        load_keys(DeidSettings(), environ={"OMIPACS_DEID_KEY": secret})


def test_error_messages_never_contain_the_secret() -> None:
    secret = "ab" * 20
    with pytest.raises(ConfigurationError) as info:
        load_keys(DeidSettings(), environ={"OMIPACS_DEID_KEY": secret})
    assert secret not in str(info.value)


def test_sub_keys_are_distinct_and_hidden_from_repr() -> None:
    keys = DeidKeys.from_secret(bytes(range(1, 33)))
    assert len({keys.client_key, keys.date_key, keys.uid_key, keys.device_key}) == 4
    text = repr(keys)
    for key in (keys.client_key, keys.date_key, keys.uid_key, keys.device_key):
        assert key.hex() not in text and repr(key) not in text


def test_world_readable_key_file_is_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "deid.key"
    path.write_text(HEX)
    path.chmod(0o644)
    with caplog.at_level(logging.WARNING):
        load_keys(DeidSettings(key_file=path), environ={})
    assert "readable by other users" in caplog.text


def test_create_demo_key(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "keys" / "demo.key"
    with caplog.at_level(logging.WARNING):
        keys = create_demo_key(path)
    assert keys.demo
    assert "DEMO" in caplog.text
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert path.read_bytes().startswith(DEMO_HEADER)
    loaded = load_keys(DeidSettings(key_file=path), environ={})
    assert loaded == keys and loaded.demo
    assert create_demo_key(path) == keys  # reused, not replaced


def test_demo_key_never_replaces_a_real_key(tmp_path: Path) -> None:
    path = tmp_path / "deid.key"
    path.write_text(HEX)
    with pytest.raises(ConfigurationError, match="not a demo key"):
        create_demo_key(path)
    assert path.read_text() == HEX


def test_demo_keys_differ_between_archives(tmp_path: Path) -> None:
    assert create_demo_key(tmp_path / "a.key") != create_demo_key(tmp_path / "b.key")


def test_key_file_path_expands_variables_for_secret_stores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``$CREDENTIALS_DIRECTORY/deid.key``: a systemd credential, decrypted into memory."""
    (tmp_path / "deid.key").write_text(HEX)
    os.chmod(tmp_path / "deid.key", 0o600)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    settings = DeidSettings(key_file=Path("$CREDENTIALS_DIRECTORY/deid.key"))
    assert load_keys(settings, {}).key_id == DeidKeys.from_secret(bytes.fromhex(HEX)).key_id


def test_filesystem_type_finds_the_longest_mount(tmp_path: Path) -> None:
    mounts = tmp_path / "mounts"
    mounts.write_text("/dev/sda1 / ext4 rw 0 0\ntmpfs /run/secrets tmpfs rw 0 0\n")
    assert filesystem_type(Path("/run/secrets/deid.key"), mounts) == "tmpfs"
    assert filesystem_type(Path("/etc/omipacs/deid.key"), mounts) == "ext4"
    assert filesystem_type(Path("/x"), tmp_path / "missing") is None


def test_config_key_file_in_a_credentials_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from omipacs import config

    monkeypatch.setenv("CREDENTIALS_DIRECTORY", "/run/credentials/omipacs.service")
    toml = tmp_path / "config.toml"
    toml.write_text('[deid]\nkey_file = "$CREDENTIALS_DIRECTORY/deid.key"\n')
    settings = config.load(toml, environ={})
    assert settings.deid.key_file == Path("/run/credentials/omipacs.service/deid.key")
