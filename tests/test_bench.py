"""The benchmarks run (tiny sizes) so they do not rot; their numbers are not asserted here."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from bench import decode, ingest
from protocols import gt06, h02, teltonika, tk103
from protocols.registry import PROTOCOLS


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


def _agreeing(stdout: str, label: str) -> tuple[int, int]:
    """(agree, total) of a decode benchmark row's check column."""
    row = re.search(rf"^  {re.escape(label)} .*check (\d+)/(\d+) agree$", stdout, re.MULTILINE)
    assert row is not None, f"no row {label!r} in:\n{stdout}"
    return int(row.group(1)), int(row.group(2))


def test_decode_benchmark_runs_every_protocol() -> None:
    data = Path(__file__).resolve().parent / "data"
    stdout = run_bench("decode", "--frames", "40", "--repeat", "1", "--loops", "1",
                       "--vectors", str(data / "traccar_vectors.json"),
                       "--nmea-log", str(data / "nmea" / "nmeaparser__NmeaSampleData.nmea.gz"))
    # Generated frames: the baseline's fix of every frame is the decoder's position (4 hemispheres).
    for name in ("gt06", "h02", "tk103", "gps103", "teltonika", "nmea", "osmand", "owntracks", "json"):
        assert _agreeing(stdout, name) == (40, 40), name
    # Every registry protocol that cuts frames has real frames decoded; all but the two MQTT-only
    # payload protocols (owntracks, json) appear in Traccar's tests.
    frame_protocols = set(PROTOCOLS) - {"owntracks", "json"}
    for name in frame_protocols:
        assert re.search(rf"^  {name} \(all frames\) ", stdout, re.MULTILINE), name
    for name in frame_protocols - {"nmea", "osmand"}:
        agree, total = _agreeing(stdout, f"{name} (baseline's type)")
        assert total > 0 and agree > 0, name
    # The Reno log (3 h, a fix every 2 s): every position the decoder makes is the baseline's fix.
    agree, total = _agreeing(stdout, "nmea (Reno car log)")
    assert agree == total > 4000
    assert stdout.count(" ratio") == 3


def test_decode_baselines_read_what_the_encoders_wrote() -> None:
    # Hand-derived: 33°52.2' S = -33.87, 151°12.6' E = 151.21; 2026-11-02 07:30:00 UTC = 1793604600
    # (20,759 days since 1970-01-01 x 86,400 s + 27,000 s).
    when = datetime(2026, 11, 2, 7, 30, tzinfo=UTC)
    stamp = 1793604600.0
    lat, lon = -33.87, 151.21
    frames = {
        decode.base_gt06: gt06.encode_gps(when, lat, lon, 40, 90, 7),
        decode.base_h02: h02.encode_report("4210051415", when, lat, lon),
        decode.base_tk103: tk103.encode_report("013632782450", when, lat, lon),
        decode.base_teltonika: teltonika.encode_avl([teltonika.AvlRecord(when, lat, lon, io1=((239, 1),))]),
    }
    for base, frame in frames.items():
        got = base(frame)
        assert got is not None
        assert abs(got[0] - lat) < 1e-5 and abs(got[1] - lon) < 1e-5 and got[2] == stamp, base.__name__


def test_ingest_benchmark_splits_the_load_over_processes(pg_server_url: str) -> None:
    stdout = run_bench("ingest", "--devices", "7", "--positions", "3", "--load-processes", "2",
                       database_url=pg_server_url)
    assert "21 acked, 21 committed, 0 errors" in stdout
    # Every device logs in before the first report, so the server holds all 7 at once.
    assert "7 logged in when reporting started; held at peak: 7 by the server (1 process), 7 open" in stdout
    assert "load generator: 2 processes" in stdout


def test_ingest_benchmark_runs_against_gateway_workers(pg_server_url: str) -> None:
    stdout = run_bench("ingest", "--devices", "12", "--positions", "3", "--gateway-workers", "2",
                       "--processing", database_url=pg_server_url)
    assert "36 acked, 36 committed, 0 errors" in stdout
    assert "12 logged in when reporting started; held at peak: 12 by the server (3 processes)" in stdout
    per_worker = re.search(r"gateway workers: 2; peak connections per worker \[(\d+), (\d+)\]", stdout)
    assert per_worker is not None, stdout
    assert int(per_worker[1]) + int(per_worker[2]) == 12
    assert "processing in the same process: 36 positions processed" in stdout


def test_load_slices_cover_every_device_once() -> None:
    assert ingest.slices(10, 3) == [(0, 4), (4, 3), (7, 3)]
    assert ingest.slices(2, 4) == [(0, 1), (1, 1)]


def test_merged_latencies_are_the_percentiles_of_all_processes() -> None:
    # Process A: 10 acks of 1.0 ms; process B: 10 acks of 3.0 ms and 10 of 5.0 ms (0.1 ms steps).
    # Of the 30, the 15th and 16th (p50) are 3.0 ms; the 30th (p99 by nearest rank) is 5.0 ms.
    part = {"acked": 10, "errors": 0, "first_error": "", "wall_start": 100.0, "wall_end": 102.0,
            "logged_in_at_start": 1, "open_peak": 1, "fd_limit": 20000, "rss_mb": 30.0}
    a = {**part, "latency_hist_0.1ms": {"10": 10}}
    b = {**part, "wall_start": 100.5, "wall_end": 103.0, "latency_hist_0.1ms": {"30": 10, "50": 10}}
    merged = ingest.merge_loads([a, b])
    assert merged["ack_p50_ms"] == 3.0 and merged["ack_p99_ms"] == 5.0
    assert merged["elapsed_s"] == 3.0 and merged["acked"] == 20 and merged["rss_mb"] == 60.0


def test_mileage_benchmark_runs(pg_server_url: str) -> None:
    stdout = run_bench("mileage", "--reps", "2", "--days", "2", "--runs", "2", database_url=pg_server_url)
    assert "runner errors 0" in stdout
    assert "ratio mileage_days / baseline (p50)" in stdout


def test_load_generator_alone_keeps_its_command_line() -> None:
    """``python -m simulators.gt06_load --port P --devices N --positions K`` (no ``--wait-go``)
    still starts by itself and prints one JSON line; the trackers are answered by gt06's own
    decoder replies from a bare asyncio server in a thread (no database needed)."""
    import asyncio
    import json
    import threading

    from protocols.model import Session

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        buffer, session = b"", Session()
        while chunk := await reader.read(4096):
            buffer += chunk
            while True:
                frame, used = gt06.PROTOCOL.next_frame(buffer)
                if used == 0:
                    break
                buffer = buffer[used:]
                reply = gt06.PROTOCOL.decode(frame, session).reply if frame else None
                if reply:
                    writer.write(reply)
        writer.close()

    loop = asyncio.new_event_loop()
    server = loop.run_until_complete(asyncio.start_server(serve, "127.0.0.1", 0))
    port = server.sockets[0].getsockname()[1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        command = [sys.executable, "-m", "simulators.gt06_load", "--port", str(port), "--devices", "3",
                   "--positions", "4"]
        out = subprocess.run(command, capture_output=True, text=True, timeout=60)
    finally:
        async def shut() -> None:
            server.close()
            await server.wait_closed()

        asyncio.run_coroutine_threadsafe(shut(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert (result["acked"], result["errors"], result["logged_in_at_start"]) == (12, 0, 3)
    assert sum(result["latency_hist_0.1ms"].values()) == 12 and result["ack_p99_ms"] >= result["ack_p50_ms"]


def test_fleet_processing_benchmark_runs(pg_server_url: str) -> None:
    stdout = run_bench("fleet_processing", "--devices", "6", "--positions", "4", "--concurrency", "1,3",
                       database_url=pg_server_url)
    assert "concurrency 1: 24 positions processed" in stdout
    assert "concurrency 3: 24 positions processed" in stdout
    assert "baseline raw binary COPY of one round's rows" in stdout


def test_fleet_processing_through_the_latency_proxy(pg_server_url: str) -> None:
    # 20 ms per round trip: far above loopback's, so the proxy's delay shows in the measured time.
    stdout = run_bench("fleet_processing", "--devices", "4", "--positions", "3", "--concurrency", "2",
                       "--rtt-ms", "20", database_url=pg_server_url)
    assert "concurrency 2: 12 positions processed" in stdout
    measured = re.search(r"runner and the database: ([\d.]+) ms \(through a proxy", stdout)
    assert measured is not None and float(measured[1]) >= 20.0, stdout
