"""A Mosquitto broker of the tests' own: started on a free port with on-disk persistence, so a
test can restart it without touching the machine's broker."""

from __future__ import annotations

import getpass
import shutil
import socket
import subprocess
import time
from pathlib import Path

from tests.ports import free_port


def reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


class Mosquitto:
    def __init__(self, folder: Path, extra_config: str = "") -> None:
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(binary).exists():
            raise RuntimeError("the MQTT tests need Mosquitto: apt-get install mosquitto "
                               "(or set FIELDTRACK_TEST_MQTT_URL to a broker)")
        self.binary = binary
        self.folder = folder
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        folder.mkdir(parents=True, exist_ok=True)
        # As root, Mosquitto would switch to the "mosquitto" user, which cannot write into a test's
        # private temporary folder; "user" keeps the current user (ignored when not root).
        user = f"user {getpass.getuser()}\n"
        (folder / "mosquitto.conf").write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence true\n{user}"
            f"persistence_location {folder}/\nautosave_interval 1\nautosave_on_changes true\n"
            f"{extra_config}"
        )

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        log = (self.folder / "mosquitto.log").open("ab")
        self.proc = subprocess.Popen([self.binary, "-c", str(self.folder / "mosquitto.conf")],
                                     stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while not reachable("127.0.0.1", self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"mosquitto did not start: {(self.folder / 'mosquitto.log').read_text()}")
            time.sleep(0.05)

    def stop(self) -> None:
        """SIGTERM: Mosquitto saves its persistence file on a clean stop."""
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None
