"""The benchmarks run (tiny sizes) so they do not rot; their numbers are not asserted here."""

from __future__ import annotations

import os
import re
import subprocess
import sys


def run_bench(module: str, *args: str, database_url: str | None = None) -> str:
    """Runs ``python -m bench.<module> args`` and returns its output; it must exit 0."""
    env = {**os.environ}
    if database_url is not None:
        env["FIELDTRACK_BENCH_DATABASE_URL"] = database_url
    out = subprocess.run([sys.executable, "-m", f"bench.{module}", *args], env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def test_ingest_benchmark_runs_end_to_end(pg_server_url: str) -> None:
    stdout = run_bench("ingest", "--devices", "5", "--positions", "3", database_url=pg_server_url)
    assert "15 acked, 15 committed, 0 errors" in stdout
    assert "ratio end-to-end / raw COPY" in stdout


def test_mqtt_benchmark_runs_end_to_end(pg_server_url: str) -> None:
    stdout = run_bench("mqtt", "--devices", "3", "--messages", "2", database_url=pg_server_url)
    assert "6 messages received, 6 positions committed, 0 malformed" in stdout
    assert "6 messages received, 60 positions committed, 0 malformed" in stdout
    assert stdout.count("ratio fieldtrack / broker") == 2


def test_processor_benchmark_runs(pg_server_url: str) -> None:
    stdout = run_bench("processors", "--fences", "30", "--repeat", "1", "--devices", "1",
                       database_url=pg_server_url)
    assert "pipeline with 30 geofences" in stdout
    assert "ratio runner / raw COPY" in stdout


def test_report_benchmark_runs(pg_server_url: str) -> None:
    stdout = run_bench("reports", "--devices", "3", "--days", "2", "--runs", "3", "--fleet-runs", "2",
                       database_url=pg_server_url)
    assert "0 devices left dirty, 0 runner errors" in stdout
    # Both days are work days (the range ends on a Friday), each with at least five drives.
    trips = re.search(r"derived: ([\d,]+) trips", stdout)
    assert trips is not None and int(trips.group(1).replace(",", "")) >= 3 * 2 * 5
    assert "fleet summary, 3 devices x 2 days (6 day rows)" in stdout
    assert stdout.count(" p50 ") == 11
    assert "ratio fleet summary / baseline (p50)" in stdout


def test_dispatch_benchmark_runs() -> None:
    stdout = run_bench("dispatch", "--reps", "500", "--queries", "20")
    assert "grid: p50" in stdout and "ratio grid p99 / baseline p99" in stdout
