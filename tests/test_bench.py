"""The benchmarks run (tiny sizes) so they do not rot; their numbers are not asserted here."""

from __future__ import annotations

import os
import subprocess
import sys


def test_ingest_benchmark_runs_end_to_end(pg_server_url: str) -> None:
    env = {**os.environ, "FIELDTRACK_BENCH_DATABASE_URL": pg_server_url}
    out = subprocess.run([sys.executable, "-m", "bench.ingest", "--devices", "5", "--positions", "3"],
                         env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "15 acked, 15 committed, 0 errors" in out.stdout
    assert "ratio end-to-end / raw COPY" in out.stdout


def test_mqtt_benchmark_runs_end_to_end(pg_server_url: str) -> None:
    env = {**os.environ, "FIELDTRACK_BENCH_DATABASE_URL": pg_server_url}
    out = subprocess.run([sys.executable, "-m", "bench.mqtt", "--devices", "3", "--messages", "2"],
                         env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "6 messages received, 6 positions committed, 0 malformed" in out.stdout
    assert "6 messages received, 60 positions committed, 0 malformed" in out.stdout
    assert out.stdout.count("ratio fieldtrack / broker") == 2


def test_processor_benchmark_runs(pg_server_url: str) -> None:
    env = {**os.environ, "FIELDTRACK_BENCH_DATABASE_URL": pg_server_url}
    out = subprocess.run([sys.executable, "-m", "bench.processors", "--fences", "30", "--repeat", "1",
                          "--devices", "1"], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "pipeline with 30 geofences" in out.stdout
    assert "ratio runner / raw COPY" in out.stdout
