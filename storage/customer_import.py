"""Customer CSV import: references, permissions and the upsert of rows the API has parsed and
validated, in one transaction, each bad row leaving no trace."""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import AsyncConnection
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from storage.customers import FIELDS, CustomerAccess, References, load_references
from storage.errors import StorageUnavailable

# ---- CSV import: the API parses and validates each row's own values; references, permissions and
# the upsert are checked and written here, in one transaction, each bad row leaving no trace.

@dataclass(slots=True)
class ImportRow:
    line: int
    values: dict[str, Any]  # FIELDS except team_id and assigned_rep_id, already validated
    team: str | None  # as written: a team id or name
    rep: str | None  # as written: a user id or email


@dataclass(slots=True)
class ImportResult:
    imported: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: builtins.list[tuple[int, str]] = field(default_factory=builtins.list)


_ARRAYS = {"name": "text", "address": "text", "latitude": "float8", "longitude": "float8",
           "radius_m": "float8", "grade": "text", "tags": "jsonb", "team_id": "int8",
           "assigned_rep_id": "int8", "custom_fields": "jsonb", "external_id": "text"}
_CSV_NAMES = {"team_id": "team", "assigned_rep_id": "rep"}


def _upsert_sql(columns: frozenset[str]) -> str:
    """Inserts every row; a row whose external_id exists updates only the file's columns (custom
    fields key by key) and only when something differs, so importing a file twice changes nothing."""
    select = ", ".join("ARRAY(SELECT jsonb_array_elements_text(u.tags))" if k == "tags" else f"u.{k}"
                       for k in FIELDS)
    kept = [k for k in FIELDS if k in columns and k not in ("custom_fields", "external_id")]
    merged = "(customers.custom_fields - %s::text[]) || EXCLUDED.custom_fields"
    return (f"INSERT INTO customers ({', '.join(FIELDS)}) SELECT {select}"
            f" FROM unnest({', '.join(f'%s::{_ARRAYS[k]}[]' for k in FIELDS)}) WITH ORDINALITY"
            f" AS u({', '.join(FIELDS)}, n) ORDER BY n ON CONFLICT (external_id) DO UPDATE SET "
            + "".join(f"{k} = EXCLUDED.{k}, " for k in kept) + f"custom_fields = {merged}, updated_at = now()"
            f" WHERE ({''.join(f'customers.{k}, ' for k in kept)}customers.custom_fields) IS DISTINCT FROM"
            f" ({''.join(f'EXCLUDED.{k}, ' for k in kept)}{merged}) RETURNING external_id")


def _upsert_params(rows: Sequence[ImportRow], custom_keys: Sequence[str]) -> builtins.list[Any]:
    arrays = [[Jsonb(r.values[k]) if _ARRAYS[k] == "jsonb" else r.values[k] for r in rows] for k in FIELDS]
    return [*arrays, list(custom_keys), list(custom_keys)]


async def _resolve(conn: AsyncConnection, rows: Sequence[ImportRow], result: ImportResult
                   ) -> builtins.list[ImportRow]:
    """Turns the team and rep columns into ids (an id first, then a team name or user email)."""
    def ids(refs: set[str]) -> builtins.list[int]:
        return [int(r) for r in refs if r.isdigit() and int(r) < 2**63]
    teams = {r.team for r in rows if r.team}
    reps = {r.rep.lower() for r in rows if r.rep}
    cur = await conn.execute("SELECT id, name FROM teams WHERE id = ANY(%s) OR name = ANY(%s)",
                             (ids(teams), list(teams)))
    team_rows = await cur.fetchall()
    cur = await conn.execute(
        "SELECT id, lower(email) FROM users WHERE id = ANY(%s) OR lower(email) = ANY(%s)",
        (ids(reps), list(reps)))
    user_rows = await cur.fetchall()
    team_of = {n: i for i, n in team_rows} | {str(i): i for i, _ in team_rows}
    user_of = {e: i for i, e in user_rows if e} | {str(i): i for i, _ in user_rows}
    good = []
    for row in rows:
        team_id = team_of.get(row.team) if row.team else None
        rep_id = user_of.get(row.rep.lower()) if row.rep else None
        if row.team and team_id is None:
            result.errors.append((row.line, f"team: unknown team {row.team!r}"))
        elif row.rep and rep_id is None:
            result.errors.append((row.line, f"rep: unknown user {row.rep!r}"))
        else:
            row.values |= {"team_id": team_id, "assigned_rep_id": rep_id}
            good.append(row)
    return good


async def import_customers(pool: AsyncConnectionPool, rows: Sequence[ImportRow], columns: frozenset[str],
                           custom_keys: Sequence[str], access: CustomerAccess, *, dry_run: bool
                           ) -> ImportResult:
    """Upserts the rows whose references and permissions check out; reports the others by line.
    ``columns``: the FIELDS the file has (team and rep count as team_id and assigned_rep_id)."""
    result = ImportResult()
    try:
        async with pool.connection() as conn, conn.transaction(force_rollback=dry_run):
            # Writers wait for the import: an external_id checked as new cannot appear meanwhile.
            await conn.execute("LOCK TABLE customers IN SHARE ROW EXCLUSIVE MODE")
            good = await _resolve(conn, rows, result)
            cur = await conn.execute(
                "SELECT external_id, team_id, assigned_rep_id, grade FROM customers"
                " WHERE external_id = ANY(%s)",
                ([r.values["external_id"] for r in good if r.values["external_id"]],))
            existing = {e: (t, rep, g) for e, t, rep, g in await cur.fetchall()}
            # Stored teams and reps count too: a file without those columns keeps them.
            teams = {r.values["team_id"] for r in good} | {t for t, _, _ in existing.values()}
            reps = {r.values["assigned_rep_id"] for r in good} | {p for _, p, _ in existing.values()}
            refs = await load_references(conn, [t for t in teams if t is not None],
                                         [p for p in reps if p is not None])
            ready: builtins.list[ImportRow] = []
            seen: dict[str, int] = {}
            for row in good:
                error = _check_row(row, columns, existing, seen, refs, access)
                if error:
                    result.errors.append((row.line, error))
                else:
                    ready.append(row)
            await _write(conn, ready, columns, custom_keys, existing, result)
    except psycopg.OperationalError as exc:
        raise StorageUnavailable(str(exc)) from exc
    result.errors.sort()
    return result


def _check_row(row: ImportRow, columns: frozenset[str], existing: dict[str, tuple[Any, Any, Any]],
               seen: dict[str, int], refs: References, access: CustomerAccess) -> str | None:
    ext = row.values["external_id"]
    if ext and ext in seen:
        return f"external_id {ext!r} repeats line {seen[ext]}"
    old = existing.get(ext) if ext else None
    if old is not None:
        if not access.may_change(old[0]):
            return f"external_id {ext!r} belongs to a customer you may not change"
        # Columns the file lacks keep their stored values: check the customer as it will be.
        for k, v in zip(("team_id", "assigned_rep_id", "grade"), old, strict=True):
            if k not in columns:
                row.values[k] = v
    problems = refs.complete(row.values)
    if problems:
        return "; ".join(f"{_CSV_NAMES.get(p.where, p.where)}: {p.problem}" for p in problems)
    team = row.values["team_id"]
    if not access.may_change(team):
        return f"you may not import customers of team {team}" if team is not None else \
            "a customer without a team needs an admin (add a team or rep column)"
    if ext:
        seen[ext] = row.line
    return None


async def _write(conn: AsyncConnection, rows: Sequence[ImportRow], columns: frozenset[str],
                 custom_keys: Sequence[str], existing: Mapping[str, Any], result: ImportResult) -> None:
    if not rows:
        return
    sql = _upsert_sql(columns).encode()
    try:
        async with conn.transaction():
            cur = await conn.execute(sql, _upsert_params(rows, custom_keys))
            written = [r[0] for r in await cur.fetchall()]
    except psycopg.errors.IntegrityError:
        # Something changed under us (a team deleted since the check): find the rows it hurts.
        written, failed = [], set()
        for row in rows:
            try:
                async with conn.transaction():
                    cur = await conn.execute(sql, _upsert_params([row], custom_keys))
                    written += [r[0] for r in await cur.fetchall()]
            except psycopg.errors.IntegrityError as exc:
                result.errors.append((row.line, str(exc.diag.message_primary or exc)))
                failed.add(row.line)
        rows = [r for r in rows if r.line not in failed]
    result.updated = sum(1 for e in written if e is not None and e in existing)
    result.imported = len(written) - result.updated
    result.unchanged = sum(1 for r in rows if r.values["external_id"] in existing) - result.updated
