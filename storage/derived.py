"""SQL for the processing runner: dirty markers, processor state and checkpoints, reading positions
in processing order, and writing marks, trips, stops and events.

Every function takes the caller's connection: the runner does one device's chunk in one
transaction, so the records, the marks and the state it resumes from always agree.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection

from processors.convert import fix_from_parts
from processors.fix import Fix
from processors.records import Event, Mark, Stop, Trip
from storage.rows import attributes_json

Key = tuple[datetime, int]


@dataclass(frozen=True, slots=True)
class Emitted:
    """A record and the position whose processing produced it."""

    record: Trip | Stop | Event
    key: Key


async def lock_device(conn: AsyncConnection, device_id: int) -> None:
    """Serialises processing of one device across runners (several processes may run one)."""
    await conn.execute("SELECT pg_advisory_xact_lock(1179931211, %s::int4)", (device_id % 2_147_483_647,))


async def dirty_devices(conn: AsyncConnection) -> list[int]:
    cur = await conn.execute("SELECT device_id FROM processing_dirty ORDER BY since_time")
    return [r[0] for r in await cur.fetchall()]


async def set_dirty(conn: AsyncConnection, device_id: int, since: Key | None) -> None:
    if since is None:
        await conn.execute("DELETE FROM processing_dirty WHERE device_id = %s", (device_id,))
    else:
        await conn.execute("UPDATE processing_dirty SET since_time = %s, since_key = %s WHERE device_id = %s",
                           (since[0], since[1], device_id))


@dataclass(frozen=True, slots=True)
class ChunkStart:
    """What processing a device's next chunk starts from."""

    since: Key  # the earliest position not processed yet
    settings: dict[str, Any]  # the device's ``processing`` attributes
    saved: tuple[Key, dict[str, Any]] | None  # the processor state, and up to which position
    latest_checkpoint: datetime | None


async def chunk_start(conn: AsyncConnection, device_id: int) -> ChunkStart | None:
    """None when nothing of the device is dirty. One query, not four: against a database on
    another host each round trip costs a millisecond per device. Locks the dirty row."""
    cur = await conn.execute(
        "SELECT d.since_time, d.since_key,"
        " (SELECT attributes -> 'processing' FROM devices WHERE id = d.device_id),"
        " s.upto_time, s.upto_key, s.state,"
        " (SELECT max(upto_time) FROM processing_checkpoints c WHERE c.device_id = d.device_id)"
        " FROM processing_dirty d LEFT JOIN processing_state s ON s.device_id = d.device_id"
        " WHERE d.device_id = %s FOR UPDATE OF d", (device_id,))
    row = await cur.fetchone()
    if row is None:
        return None
    settings = row[2] if isinstance(row[2], dict) else {}
    saved = ((row[3], row[4]), row[5]) if row[3] is not None else None
    return ChunkStart((row[0], row[1]), settings, saved, row[6])


async def checkpoint_before(conn: AsyncConnection, device_id: int,
                            before: Key) -> tuple[Key, dict[str, Any]] | None:
    cur = await conn.execute(
        "SELECT upto_time, upto_key, state FROM processing_checkpoints WHERE device_id = %s"
        " AND (upto_time, upto_key) < (%s, %s) ORDER BY upto_time DESC, upto_key DESC LIMIT 1",
        (device_id, before[0], before[1]))
    row = await cur.fetchone()
    return ((row[0], row[1]), row[2]) if row else None


def _after(column: str, key: Key | None) -> tuple[str, tuple[Any, ...]]:
    if key is None:
        return "", ()
    return f" AND ({column}_time, {column}_key) > (%s, %s)", key


async def discard_checkpoints_after(conn: AsyncConnection, device_id: int, key: Key | None) -> None:
    cond, params = _after("upto", key)
    await conn.execute(f"DELETE FROM processing_checkpoints WHERE device_id = %s{cond}".encode(),
                       (device_id, *params))


async def fetch_positions(conn: AsyncConnection, device_id: int, after: Key | None, limit: int) -> list[Fix]:
    cond = "" if after is None else " AND (fix_time, fingerprint) > (%s, %s)"
    params: tuple[Any, ...] = (device_id,) if after is None else (device_id, after[0], after[1])
    cur = await conn.execute(
        ("SELECT fix_time, latitude, longitude, valid, speed_kmh, course_deg, accuracy_m, hdop, altitude_m,"
         " attributes, fingerprint, server_time FROM positions WHERE device_id = %s" + cond +
         " AND latitude IS NOT NULL AND longitude IS NOT NULL"
         " ORDER BY fix_time, fingerprint LIMIT %s").encode(), (*params, limit))
    return [fix_from_parts(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9] or {}, r[10], r[11])
            for r in await cur.fetchall()]


async def save_marks(conn: AsyncConnection, device_id: int, fixes: Sequence[Fix],
                     marks: Sequence[Mark]) -> None:
    if not fixes:
        return
    await conn.execute(
        "UPDATE positions p SET filtered = m.f, odometer_m = m.o, moving = m.mv"
        " FROM unnest(%s::timestamptz[], %s::int8[], %s::text[], %s::float8[], %s::bool[])"
        " AS m(t, k, f, o, mv)"
        " WHERE p.device_id = %s AND p.fix_time = m.t AND p.fingerprint = m.k",
        ([f.time for f in fixes], [f.key for f in fixes], [m.filtered for m in marks],
         [m.odometer_m for m in marks], [m.moving for m in marks], device_id))


async def replace_records(conn: AsyncConnection, device_id: int, after: Key | None, upto: Key,
                          emitted: Sequence[Emitted]) -> list[tuple[int, Event]]:
    """Make the trips, stops and events emitted in (after, upto] exactly ``emitted``. Events that
    already existed keep their row (and are not announced again); returns the new events."""
    cond, params = _after("emitted", after)
    upto_cond = " AND (emitted_time, emitted_key) <= (%s, %s)"
    for table in ("trips", "stops"):
        await conn.execute(f"DELETE FROM {table} WHERE device_id = %s{cond}{upto_cond}".encode(),
                           (device_id, *params, *upto))
    trips = [(e.record, e.key) for e in emitted if isinstance(e.record, Trip)]
    stops = [(e.record, e.key) for e in emitted if isinstance(e.record, Stop)]
    events = [(e.record, e.key) for e in emitted if isinstance(e.record, Event)]
    if trips:
        async with conn.cursor() as cur:
            await cur.executemany(
                "INSERT INTO trips (device_id, start_time, end_time, start_latitude, start_longitude,"
                " end_latitude, end_longitude, distance_m, max_speed_kmh, average_speed_kmh,"
                " start_odometer_m, end_odometer_m, emitted_time, emitted_key)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (device_id, start_time) DO UPDATE SET end_time = EXCLUDED.end_time,"
                " end_latitude = EXCLUDED.end_latitude, end_longitude = EXCLUDED.end_longitude,"
                " distance_m = EXCLUDED.distance_m, max_speed_kmh = EXCLUDED.max_speed_kmh,"
                " average_speed_kmh = EXCLUDED.average_speed_kmh, end_odometer_m = EXCLUDED.end_odometer_m,"
                " start_odometer_m = EXCLUDED.start_odometer_m, emitted_time = EXCLUDED.emitted_time,"
                " emitted_key = EXCLUDED.emitted_key",
                [(device_id, t.start_time, t.end_time, t.start_latitude, t.start_longitude, t.end_latitude,
                  t.end_longitude, t.distance_m, t.max_speed_kmh, t.average_speed_kmh, t.start_odometer_m,
                  t.end_odometer_m, k[0], k[1]) for t, k in trips])
    if stops:
        async with conn.cursor() as cur:
            await cur.executemany(
                "INSERT INTO stops (device_id, start_time, end_time, latitude, longitude, odometer_m,"
                " emitted_time, emitted_key) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (device_id, start_time) DO UPDATE SET end_time = EXCLUDED.end_time,"
                " latitude = EXCLUDED.latitude, longitude = EXCLUDED.longitude,"
                " odometer_m = EXCLUDED.odometer_m, emitted_time = EXCLUDED.emitted_time,"
                " emitted_key = EXCLUDED.emitted_key",
                [(device_id, s.start_time, s.end_time, s.latitude, s.longitude, s.odometer_m, k[0], k[1])
                 for s, k in stops])
    # Events no longer produced by this period go; those produced again stay as they are.
    await conn.execute(
        (f"DELETE FROM events e WHERE device_id = %s{cond}{upto_cond}"
         " AND type NOT IN ('deviceOnline', 'deviceOffline') AND NOT EXISTS ("
         " SELECT 1 FROM unnest(%s::text[], %s::timestamptz[], %s::int8[]) AS n(type, time, fence)"
         " WHERE n.type = e.type AND n.time = e.time AND n.fence = coalesce(e.geofence_id, 0))").encode(),
        (device_id, *params, *upto, [ev.type for ev, _ in events], [ev.time for ev, _ in events],
         [ev.geofence_id or 0 for ev, _ in events]))
    new: list[tuple[int, Event]] = []
    async with conn.cursor() as cur:
        for ev, k in events:
            await cur.execute(
                "INSERT INTO events (device_id, time, type, latitude, longitude, geofence_id, attributes,"
                " emitted_time, emitted_key) VALUES (%s, %s, %s, %s, %s, %s, %s::jsonb, %s, %s)"
                " ON CONFLICT (device_id, type, time, (coalesce(geofence_id, 0))) DO NOTHING RETURNING id",
                (device_id, ev.time, ev.type, ev.latitude, ev.longitude, ev.geofence_id,
                 attributes_json(ev.attributes), k[0], k[1]))
            row = await cur.fetchone()
            if row is not None:
                new.append((row[0], ev))
    return new


async def save_state(conn: AsyncConnection, device_id: int, upto: Key, state: dict[str, Any]) -> None:
    await conn.execute(
        "INSERT INTO processing_state (device_id, upto_time, upto_key, state) VALUES (%s, %s, %s, %s::jsonb)"
        " ON CONFLICT (device_id) DO UPDATE SET upto_time = EXCLUDED.upto_time, upto_key = EXCLUDED.upto_key,"
        " state = EXCLUDED.state, updated_at = now()",
        (device_id, upto[0], upto[1], json.dumps(state)))


async def save_checkpoints(conn: AsyncConnection, device_id: int,
                           checkpoints: Sequence[tuple[Key, dict[str, Any]]]) -> None:
    if not checkpoints:
        return
    async with conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO processing_checkpoints (device_id, upto_time, upto_key, state)"
            " VALUES (%s, %s, %s, %s::jsonb) ON CONFLICT DO NOTHING",
            [(device_id, k[0], k[1], json.dumps(s)) for k, s in checkpoints])


# Checkpoints bound how far back a late position replays. Recent data gets late most (a phone's
# buffer, a tracker's black box), so: every hour for the last two days of the device's data,
# then one a day for five weeks, then one a week; a replay from further back costs more but is
# still exact.
_THIN = """
DELETE FROM processing_checkpoints c
WHERE c.device_id = %(device)s AND c.upto_time < %(upto)s - interval '2 days'
  AND (c.upto_time, c.upto_key) NOT IN (
    SELECT DISTINCT ON (bucket) upto_time, upto_key FROM (
        SELECT upto_time, upto_key,
               CASE WHEN upto_time >= %(upto)s - interval '35 days' THEN date_trunc('day', upto_time)
                    ELSE date_trunc('week', upto_time) END AS bucket
        FROM processing_checkpoints
        WHERE device_id = %(device)s AND upto_time < %(upto)s - interval '2 days') k
    ORDER BY bucket, upto_time, upto_key)
"""


async def thin_checkpoints(conn: AsyncConnection, device_id: int, upto: datetime) -> None:
    await conn.execute(_THIN.encode(), {"device": device_id, "upto": upto})
