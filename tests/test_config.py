"""Settings: defaults, config.toml, environment overrides, errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from omipacs.config import load
from omipacs.errors import ConfigurationError

ROOT = Path(__file__).resolve().parents[1]


def test_shipped_config_loads_with_documented_defaults() -> None:
    settings = load(ROOT / "config.toml", environ={})
    assert settings.storage.root == ROOT / "storage"
    assert settings.database_url == f"sqlite:///{ROOT / 'storage' / 'index.sqlite'}"
    assert settings.dimse.ae_title == "OMIPACS" and settings.dimse.host == "127.0.0.1"
    assert settings.http.base_path == "/dicom-web" and settings.http.host == "127.0.0.1"
    assert settings.dimse.peers


def test_environment_overrides_file(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[dimse]\nport = 104\n[storage]\nroot = "data"\n')
    settings = load(
        cfg,
        environ={"OMIPACS_DIMSE_PORT": "11113", "OMIPACS_DATABASE_URL": "postgresql+psycopg://x/y"},
    )
    assert settings.dimse.port == 11113
    assert settings.storage.root == tmp_path / "data"
    assert settings.database_url == "postgresql+psycopg://x/y"


@pytest.mark.parametrize(
    "text",
    [
        "[dimse]\nport = 'abc'\n",
        "[nosuch]\nx = 1\n",
        "[dimse]\nbogus = 1\n",
        "[dimse]\nallow_any_peer = 'maybe'\n",
        # A revoked token must stop working within seconds in every process.
        "[auth]\ncache_seconds = 3600\n",
        "[auth]\ncache_seconds = -1\n",
        "not toml [",
    ],
)
def test_bad_config_is_a_clear_error(tmp_path: Path, text: str) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(text)
    with pytest.raises(ConfigurationError):
        load(cfg, environ={})
