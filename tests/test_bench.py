"""The benchmarks run (tiny sizes) so they do not rot; their numbers are not asserted here."""

from __future__ import annotations

import os
import re
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


def test_report_benchmark_runs(pg_server_url: str) -> None:
    env = {**os.environ, "FIELDTRACK_BENCH_DATABASE_URL": pg_server_url}
    out = subprocess.run([sys.executable, "-m", "bench.reports", "--devices", "3", "--days", "2",
                          "--runs", "3", "--fleet-runs", "2"], env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 devices left dirty, 0 runner errors" in out.stdout
    # Both days are work days (the range ends on a Friday), each with at least five drives.
    trips = re.search(r"derived: ([\d,]+) trips", out.stdout)
    assert trips is not None and int(trips.group(1).replace(",", "")) >= 3 * 2 * 5
    assert "fleet summary, 3 devices x 2 days (6 day rows)" in out.stdout
    assert out.stdout.count(" p50 ") == 11
    assert "ratio fleet summary / baseline (p50)" in out.stdout


def test_dispatch_benchmark_runs() -> None:
    out = subprocess.run([sys.executable, "-m", "bench.dispatch", "--reps", "500", "--queries", "20"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "grid: p50" in out.stdout and "ratio grid p99 / baseline p99" in out.stdout
