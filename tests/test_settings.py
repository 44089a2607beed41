"""Settings from the environment and a TOML file."""

from __future__ import annotations

from pathlib import Path

import pytest

from fieldtrack.settings import DEFAULT_PORTS, load


def test_defaults_are_traccars_ports() -> None:
    s = load(env={})
    assert s.port_for("gt06") == 5023 and s.port_for("osmand") == 5055 and s.port_for("teltonika") == 5027
    assert s.api_port == 8000 and s.register_unknown is False and s.database_url is None
    assert s.idle_timeout_s == 1800


def test_environment_overrides_and_switches_off(tmp_path: Path) -> None:
    s = load(env={
        "FIELDTRACK_GT06_PORT": "6023", "FIELDTRACK_H02_PORT": "0", "FIELDTRACK_API_PORT": "9000",
        "FIELDTRACK_REGISTER_UNKNOWN": "true", "FIELDTRACK_DATA_DIR": str(tmp_path),
        "FIELDTRACK_DATABASE_URL": "postgresql://db/x",
    })
    assert s.port_for("gt06") == 6023 and s.port_for("h02") == 0 and s.api_port == 9000
    assert s.register_unknown is True and s.data_dir == tmp_path and s.database_url == "postgresql://db/x"
    assert s.spool_dir == tmp_path / "spool"


def test_file_then_environment(tmp_path: Path) -> None:
    cfg = tmp_path / "ft.toml"
    cfg.write_text('api_port = 8100\nregister_unknown = true\n[ports]\ngt06 = 7000\ntk103 = 0\n')
    s = load(env={"FIELDTRACK_CONFIG": str(cfg), "FIELDTRACK_API_PORT": "8200"})
    assert s.api_port == 8200 and s.register_unknown is True
    assert s.port_for("gt06") == 7000 and s.port_for("tk103") == 0
    assert s.port_for("nmea") == DEFAULT_PORTS["nmea"]


def test_unknown_setting_in_file_is_an_error(tmp_path: Path) -> None:
    cfg = tmp_path / "ft.toml"
    cfg.write_text('api_prot = 1\n')
    with pytest.raises(ValueError, match="api_prot"):
        load(env={}, config_file=cfg)
