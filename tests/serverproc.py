"""Run ``fieldtrack serve`` as a real child process on free ports, for end-to-end tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from fieldtrack.settings import DEFAULT_PORTS
from tests.ports import free_port

TOKEN = "e2e-admin-token"


class ServerProcess:
    def __init__(self, data_dir: Path, database_url: str | None, **extra_env: str) -> None:
        self.data_dir = data_dir
        self.ports = {name: free_port() for name in DEFAULT_PORTS}
        self.api_port = free_port()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("FIELDTRACK_")}
        self.env.update({
            "FIELDTRACK_DATA_DIR": str(data_dir),
            "FIELDTRACK_API_PORT": str(self.api_port),
            "FIELDTRACK_API_HOST": "127.0.0.1",
            "FIELDTRACK_LISTEN_HOST": "127.0.0.1",
            "FIELDTRACK_ADMIN_TOKEN": TOKEN,
            **{f"FIELDTRACK_{name.upper()}_PORT": str(port) for name, port in self.ports.items()},
            **extra_env,
        })
        if database_url:
            self.env["FIELDTRACK_DATABASE_URL"] = database_url
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = data_dir / "server.log"

    def start(self, timeout_s: float = 90.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        out = self.log.open("ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "fieldtrack.cli", "serve"], env=self.env,
                                     stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log.read_text()}")
            try:
                if self.api("GET", "/api/health")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"server did not come up:\n{self.log.read_text()}")

    def api(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"http://127.0.0.1:{self.api_port}{path}", data=data, method=method,
                                     headers={"Authorization": f"Bearer {TOKEN}",
                                              "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                raw = resp.read()
                return resp.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"null")

    def osmand(self, query: str) -> int:
        url = f"http://127.0.0.1:{self.ports['osmand']}/?{query}"
        try:
            with urllib.request.urlopen(url, timeout=30) as resp:
                return int(resp.status)
        except urllib.error.HTTPError as err:
            return int(err.code)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self, timeout_s: float = 30.0) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout_s)
