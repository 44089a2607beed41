"""Report templates, visit reports and photos through the API on a real database.

Visits are written by SQL (the visits API is another module's): these tests need only rows."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from hashlib import sha256
from typing import Any

import pytest

from processors.photos import REUSE_MAX_DISTANCE, hamming
from tests.api.conftest import Api
from tests.api.people import Person, call, new_user
from tests.processors.test_photos import _png_header_only, encoded, scene, with_exif

# The shop sits on whole arc-seconds so EXIF can say exactly where it is: 52°22'12" N, 4°53'42" E.
SHOP = (52.37, 4.895)
SHOP_GPS = ("N", (52.0, 22.0, 12.0), "E", (4.0, 53.0, 42.0))
FAR_GPS = ("N", (52.0, 22.0, 48.0), "E", (4.0, 53.0, 42.0))  # 36" of latitude north: ~1.1 km away
DAY = date(2026, 10, 5)  # a Monday; Amsterdam is on CEST, UTC+2
CHECKIN = datetime(2026, 10, 5, 7, 0, tzinfo=UTC)  # 09:00 local
CHECKOUT = datetime(2026, 10, 5, 7, 40, tzinfo=UTC)
TEMPLATE = [
    {"key": "stock", "label": "Shelf stock", "type": "number", "required": True, "min": 0, "max": 500},
    {"key": "mood", "label": "Owner's mood", "type": "choice", "choices": ["good", "bad"], "required": True},
    {"key": "lines", "label": "Lines shown", "type": "multichoice", "choices": ["tea", "coffee", "cocoa"]},
    {"key": "promo", "label": "Promo display up", "type": "boolean"},
    {"key": "next", "label": "Next visit", "type": "date"},
    {"key": "remark", "label": "Remark", "type": "text"},
]
GOOD = {"stock": 120, "mood": "good", "lines": ["tea", "cocoa"], "promo": True, "next": "2026-10-19"}


@dataclass
class Company:
    teams: dict[str, int] = field(default_factory=dict)
    managers: dict[str, Person] = field(default_factory=dict)
    reps: dict[str, Person] = field(default_factory=dict)  # "north-1", "north-2", "south-1", "south-2"
    shops: dict[str, int] = field(default_factory=dict)  # one unassigned customer per team


@pytest.fixture
async def company(api: Api) -> Company:
    c = Company()
    for n, team in enumerate(("north", "south")):
        created = await call(api, "POST", "/api/teams", expect=201,
                             json={"name": team, "time_zone": "Europe/Amsterdam"})
        c.teams[team] = created["id"]
        c.managers[team] = await new_user(api, f"{team}-manager", "manager", created["id"])
        await call(api, "PUT", f"/api/teams/{created['id']}/managers/{c.managers[team].id}", expect=204)
        for i in (1, 2):
            c.reps[f"{team}-{i}"] = await new_user(api, f"{team}-rep{i}", "rep", created["id"])
        shop = await call(api, "POST", "/api/customers", expect=201,
                          json={"name": f"{team} shop", "latitude": SHOP[0] + n, "longitude": SHOP[1],
                                "team_id": created["id"]})
        c.shops[team] = shop["id"]
    return c


async def new_visit(api: Api, customer: int, rep: int, team: int, *, status: str = "done",
                    checkin_at: datetime | None = CHECKIN, checkout_at: datetime | None = CHECKOUT,
                    created_at: datetime = CHECKIN - timedelta(days=1), **more: Any) -> int:
    values: dict[str, Any] = {"customer_id": customer, "rep_id": rep, "team_id": team, "day": DAY,
                              "status": status, "checkin_at": checkin_at, "checkout_at": checkout_at,
                              "created_at": created_at, "updated_at": created_at, **more}
    if checkin_at is not None:
        values |= {"checkin_latitude": SHOP[0], "checkin_longitude": SHOP[1]}
    columns = ", ".join(values)
    async with api.pool.connection() as conn:
        cur = await conn.execute(f"INSERT INTO visits ({columns}) VALUES ({', '.join(['%s'] * len(values))})"
                                 " RETURNING id", list(values.values()))
        row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def counts(api: Api) -> tuple[int, int, int]:
    async with api.pool.connection() as conn:
        cur = await conn.execute("SELECT (SELECT count(*) FROM visit_reports),"
                                 " (SELECT count(*) FROM visit_photos), (SELECT count(*) FROM media)")
        row = await cur.fetchone()
    assert row is not None
    return row[0], row[1], row[2]


def jpeg(seed: int = 1, **exif: Any) -> bytes:
    return with_exif(scene(seed), **exif) if exif else encoded(scene(seed), quality=90)


def photo_parts(*images: bytes) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("photo", (f"IMG_{n}.jpg", data, "image/jpeg")) for n, data in enumerate(images)]


async def test_template_versions_and_who_may_write(api: Api, company: Company) -> None:
    north, south = company.teams["north"], company.teams["south"]
    path = f"/api/teams/{north}/report-template"
    empty = await call(api, "GET", path, company.reps["north-1"].token)
    assert empty["fields"] == [] and empty["version"] == 0
    first = await call(api, "PUT", path, company.managers["north"].token, json={"fields": TEMPLATE})
    assert first["version"] == 1 and first["updated_by"] == company.managers["north"].id
    assert [f["key"] for f in first["fields"]] == [f["key"] for f in TEMPLATE]
    second = await call(api, "PUT", path, json={"fields": TEMPLATE[:2]})  # admin
    assert second["version"] == 2
    read = await call(api, "GET", path, company.reps["north-2"].token)
    assert read["version"] == 2 and read["fields"] == second["fields"]
    assert "choices" not in read["fields"][0] and read["fields"][1]["choices"] == ["good", "bad"]
    await call(api, "PUT", path, company.reps["north-1"].token, expect=403, json={"fields": []})
    await call(api, "GET", path, company.managers["south"].token, expect=404)
    await call(api, "PUT", path, company.managers["south"].token, expect=404, json={"fields": []})
    await call(api, "GET", f"/api/teams/{south}/report-template", company.reps["north-1"].token, expect=404)
    await call(api, "PUT", "/api/teams/987654/report-template", expect=404, json={"fields": []})
    assert (await call(api, "GET", path))["version"] == 2  # the refused writes changed nothing


@pytest.mark.parametrize(("fields", "where"), [
    ([TEMPLATE[0], {**TEMPLATE[1], "key": "stock"}], "body.fields[1].key"),
    ([{"key": "mood", "label": "Mood", "type": "choice"}], "body.fields[0].choices"),
    ([{"key": "mood", "label": "Mood", "type": "choice", "choices": ["a", "a"]}], "body.fields[0].choices"),
    ([{"key": "n", "label": "N", "type": "number", "min": 5, "max": 1}], "body.fields[0].min"),
    ([{"key": "t", "label": "T", "type": "text", "max": 1}], "body.fields[0].max"),
    ([{"key": "t", "label": "T", "type": "text", "choices": ["x"]}], "body.fields[0].choices"),
    ([{"key": "1st", "label": "T", "type": "text"}], "body.fields[0].key"),
    ([{"key": "t", "label": " ", "type": "text"}], "body.fields[0].label"),
    ([{"key": "t", "label": "T", "type": "colour"}], "body.fields.0.type"),
])
async def test_bad_templates_name_the_field(api: Api, company: Company, fields: list[Any],
                                            where: str) -> None:
    got = await call(api, "PUT", f"/api/teams/{company.teams['north']}/report-template", expect=422,
                     json={"fields": fields})
    assert where in [p["where"] for p in got["detail"]], got


@pytest.mark.parametrize(("answers", "where"), [
    ({k: v for k, v in GOOD.items() if k != "stock"}, "body.answers.stock"),  # required
    ({**GOOD, "stock": "many"}, "body.answers.stock"),
    ({**GOOD, "stock": 501}, "body.answers.stock"),
    ({**GOOD, "stock": True}, "body.answers.stock"),
    ({**GOOD, "mood": "great"}, "body.answers.mood"),
    ({**GOOD, "lines": ["tea", "beer"]}, "body.answers.lines"),
    ({**GOOD, "promo": "yes"}, "body.answers.promo"),
    ({**GOOD, "next": "19/10/2026"}, "body.answers.next"),
    ({**GOOD, "colour": "red"}, "body.answers.colour"),
])
async def test_answers_checked_against_the_template(api: Api, company: Company, answers: dict[str, Any],
                                                    where: str) -> None:
    await call(api, "PUT", f"/api/teams/{company.teams['north']}/report-template", json={"fields": TEMPLATE})
    rep = company.reps["north-1"]
    visit = await new_visit(api, company.shops["north"], rep.id, company.teams["north"])
    got = await call(api, "PUT", f"/api/visits/{visit}/report", rep.token, expect=422,
                     json={"answers": answers, "notes": "x"})
    assert [p["where"] for p in got["detail"]] == [where]
    await call(api, "GET", f"/api/visits/{visit}/report", rep.token, expect=404)


async def test_json_report_written_by_its_rep_read_by_managers(api: Api, company: Company) -> None:
    north = company.teams["north"]
    await call(api, "PUT", f"/api/teams/{north}/report-template", json={"fields": TEMPLATE})
    rep, other = company.reps["north-1"], company.reps["north-2"]
    visit = await new_visit(api, company.shops["north"], rep.id, north)
    path = f"/api/visits/{visit}/report"
    first = await call(api, "PUT", path, rep.token, json={"answers": GOOD, "notes": "tidy shop"})
    assert first["answers"] == GOOD and first["template_version"] == 1 and first["photos"] == []
    assert [f["key"] for f in first["template"]] == [f["key"] for f in TEMPLATE]
    # The template changes; the report keeps the form it was filled against until it is rewritten.
    await call(api, "PUT", f"/api/teams/{north}/report-template", json={"fields": TEMPLATE[:2]})
    read = await call(api, "GET", path, company.managers["north"].token)
    assert read["template_version"] == 1 and len(read["template"]) == len(TEMPLATE)
    second = await call(api, "PUT", path, rep.token, json={"answers": {"stock": 3, "mood": "bad"}})
    assert second["id"] == first["id"] and second["template_version"] == 2 and second["notes"] is None
    assert second["submitted_at"] == first["submitted_at"] and second["updated_at"] > first["updated_at"]
    assert (await call(api, "GET", path))["answers"] == {"stock": 3, "mood": "bad"}  # admin reads
    await call(api, "PUT", path, company.managers["north"].token, expect=403, json={"answers": GOOD})
    await call(api, "PUT", path, expect=403, json={"answers": GOOD})  # admin reads, does not write
    await call(api, "GET", path, other.token, expect=404)  # a colleague's visit
    await call(api, "PUT", path, other.token, expect=404, json={"answers": GOOD})
    await call(api, "GET", path, company.managers["south"].token, expect=404)
    await call(api, "GET", "/api/visits/987654/report", expect=404)
    cancelled = await new_visit(api, company.shops["north"], rep.id, north, status="cancelled")
    await call(api, "PUT", f"/api/visits/{cancelled}/report", rep.token, expect=409, json={"answers": GOOD})
    r = await api.client.put(path, headers={**api.auth(rep.token), "content-type": "text/plain"},
                             content=b"answers=1")
    assert r.status_code == 415


async def test_report_and_photos_in_one_request_or_not_at_all(api: Api, company: Company) -> None:
    north = company.teams["north"]
    await call(api, "PUT", f"/api/teams/{north}/report-template", json={"fields": TEMPLATE})
    rep = company.reps["north-1"]
    visit = await new_visit(api, company.shops["north"], rep.id, north)
    path = f"/api/visits/{visit}/report"
    at_shop = jpeg(1, taken="2026:10:05 09:10:00", gps=SHOP_GPS)  # naive: 09:10 CEST = 07:10Z
    plain = jpeg(2)
    before = await counts(api)
    # Bad answers with good photos, then a good report with a text file among the photos: nothing stays.
    await call(api, "PUT", path, rep.token, expect=422, data={"report": json.dumps({"answers": {}})},
               files=photo_parts(at_shop, plain))
    await call(api, "PUT", path, rep.token, expect=415, data={"report": json.dumps({"answers": GOOD})},
               files=[*photo_parts(at_shop), ("photo", ("notes.jpg", b"just text", "image/jpeg"))])
    await call(api, "PUT", path, rep.token, expect=422, files=photo_parts(at_shop))  # no report part
    await call(api, "PUT", path, rep.token, expect=422,
               files=[("report", (None, b"{not json", "application/json"))])
    assert await counts(api) == before
    got = await call(api, "PUT", path, rep.token, files=photo_parts(at_shop, plain),
                     data={"report": json.dumps({"answers": GOOD, "notes": "ok"})})
    assert got["answers"] == GOOD and got["notes"] == "ok"
    photos = got["photos"]
    assert [p["flags"] for p in photos] == [[], ["no_exif"]]
    assert all(p["report_id"] == got["id"] and p["visit_id"] == visit for p in photos)
    assert photos[0]["sha256"] == sha256(at_shop).hexdigest() and photos[0]["size_bytes"] == len(at_shop)
    assert photos[0]["taken_at"] == "2026-10-05T07:10:00Z"
    assert (photos[0]["exif_latitude"], photos[0]["exif_longitude"]) == pytest.approx(SHOP)
    # 2 originals + 2 stamped copies, and the report.
    assert await counts(api) == (before[0] + 1, before[1] + 2, before[2] + 4)
    listed = await call(api, "GET", f"/api/visits/{visit}/photos", company.managers["north"].token)
    assert [p["id"] for p in listed["items"]] == [p["id"] for p in photos]
    one = await call(api, "GET", f"/api/photos/{photos[0]['id']}", company.managers["north"].token)
    assert one == photos[0]
    await call(api, "GET", f"/api/photos/{photos[0]['id']}", company.managers["south"].token, expect=404)
    await call(api, "GET", f"/api/photos/{photos[0]['id']}", company.reps["north-2"].token, expect=404)


async def test_photo_bytes_with_etags(api: Api, company: Company) -> None:
    rep = company.reps["north-1"]
    visit = await new_visit(api, company.shops["north"], rep.id, company.teams["north"])
    original = jpeg(3, taken="2026:10:05 09:10:00", gps=SHOP_GPS)
    photo = (await call(api, "POST", f"/api/visits/{visit}/photos", rep.token, expect=201,
                        files=photo_parts(original)))["items"][0]
    r = await api.client.get(f"/api/photos/{photo['id']}/original", headers=api.auth(rep.token))
    assert r.status_code == 200 and r.content == original and r.headers["content-type"] == "image/jpeg"
    assert r.headers["etag"] == f'"{sha256(original).hexdigest()}"'
    w = await api.client.get(f"/api/photos/{photo['id']}/watermarked", headers=api.auth())
    assert w.status_code == 200 and w.headers["content-type"] == "image/jpeg"
    assert w.headers["etag"] == f'"{sha256(w.content).hexdigest()}"' == f'"{photo["watermarked_sha256"]}"'
    assert w.content != original
    again = await api.client.get(f"/api/photos/{photo['id']}/original",
                                 headers={**api.auth(rep.token), "If-None-Match": r.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    hidden = await api.client.get(f"/api/photos/{photo['id']}/watermarked",
                                  headers=api.auth(company.managers["south"].token))
    assert hidden.status_code == 404


async def test_reused_photo_flagged_and_retry_is_not_a_new_photo(api: Api, company: Company) -> None:
    a, b = company.reps["north-1"], company.reps["south-1"]
    first_visit = await new_visit(api, company.shops["north"], a.id, company.teams["north"])
    second_visit = await new_visit(api, company.shops["south"], b.id, company.teams["south"])
    picture = scene(11)
    original = encoded(picture, quality=92)
    first = (await call(api, "POST", f"/api/visits/{first_visit}/photos", a.token, expect=201,
                        files=photo_parts(original)))["items"][0]
    assert "reused_photo" not in first["flags"] and first["duplicate_of"] is None
    before = await counts(api)
    retry = (await call(api, "POST", f"/api/visits/{first_visit}/photos", a.token, expect=201,
                        files=photo_parts(original)))["items"][0]
    assert retry == first and await counts(api) == before
    # Another rep sends the same picture, re-saved at quality 60 and at half size, plus a new picture.
    reused = encoded(picture.resize((400, 300)), quality=60)
    got = (await call(api, "POST", f"/api/visits/{second_visit}/photos", b.token, expect=201,
                      files=photo_parts(reused, encoded(scene(12)))))["items"]
    assert hamming(int(got[0]["phash"], 16), int(first["phash"], 16)) <= REUSE_MAX_DISTANCE
    assert "reused_photo" in got[0]["flags"] and got[0]["duplicate_of"] == first["id"]
    assert "reused_photo" not in got[1]["flags"] and got[1]["duplicate_of"] is None


async def test_exif_checked_against_the_visit(api: Api, company: Company) -> None:
    rep = company.reps["north-1"]
    visit = await new_visit(api, company.shops["north"], rep.id, company.teams["north"])
    images = [
        jpeg(21, taken="2026:10:05 09:10:00", gps=SHOP_GPS),  # in the visit, at the shop
        jpeg(22, taken="2026:10:05 15:00:00", gps=SHOP_GPS),  # 13:00Z: hours after check-out (07:40Z)
        jpeg(23, taken="2026:10:05 09:20:00", gps=FAR_GPS),  # ~1.1 km from a 150 m radius (+100 m)
        # With an offset the time is not read in the rep's zone: 09:05+00:00 is 11:05 CEST, too late.
        jpeg(24, taken="2026:10:05 09:05:00", offset="+00:00"),
        jpeg(25, taken="2026:10:05 08:45:00", offset="+02:00"),  # 06:45Z: 15 min before check-in
    ]
    got = (await call(api, "POST", f"/api/visits/{visit}/photos", rep.token, expect=201,
                      files=photo_parts(*images)))["items"]
    assert [p["flags"] for p in got] == [[], ["exif_time_mismatch"], ["exif_location_far"],
                                         ["exif_time_mismatch"], []]
    # No check-in yet and no window: the rep's local day (Amsterdam) is the window.
    planned = await new_visit(api, company.shops["north"], rep.id, company.teams["north"],
                              status="approved", checkin_at=None, checkout_at=None)
    # The local day is 2026-10-04T22:00Z to 2026-10-05T22:00Z; 23:50 CEST = 21:50Z is in it, 03:00 next
    # morning (01:00Z) is 3 h past it, beyond the 30 min tolerance.
    late = photo_parts(jpeg(26, taken="2026:10:05 23:50:00"),
                       jpeg(27, taken="2026:10:06 03:00:00", offset="+02:00"))
    day = (await call(api, "POST", f"/api/visits/{planned}/photos", rep.token, expect=201,
                      files=late))["items"]
    assert [p["flags"] for p in day] == [[], ["exif_time_mismatch"]]


async def test_upload_limits_and_refusals(api: Api, company: Company) -> None:
    rep = company.reps["north-1"]
    visit = await new_visit(api, company.shops["north"], rep.id, company.teams["north"])
    path = f"/api/visits/{visit}/photos"
    before = await counts(api)
    big = await call(api, "POST", path, rep.token, expect=413,
                     files=[("photo", ("big.jpg", b"\xff\xd8" + b"\0" * (10 * 2**20), "image/jpeg"))])
    assert "big.jpg" in big["detail"]
    await call(api, "POST", path, rep.token, expect=413, files=photo_parts(*[jpeg(n) for n in range(7)]))
    await call(api, "POST", path, rep.token, expect=413,
               files=[("photo", ("bomb.png", _png_header_only(100_000, 100_000), "image/png"))])
    await call(api, "POST", path, rep.token, expect=415,
               files=[("photo", ("shop.jpg", encoded(scene(1), "PNG"), "image/jpeg"))])
    await call(api, "POST", path, rep.token, expect=415, json={"photo": "x"})
    await call(api, "POST", path, rep.token, expect=422, files=[("picture", ("a.jpg", jpeg(), "image/jpeg"))])
    await call(api, "POST", path, rep.token, expect=422, files=[("note", (None, b"no photo"))])
    await call(api, "POST", path, company.managers["north"].token, expect=403, files=photo_parts(jpeg()))
    await call(api, "POST", path, company.reps["north-2"].token, expect=404, files=photo_parts(jpeg()))
    await call(api, "POST", "/api/visits/987654/photos", rep.token, expect=404, files=photo_parts(jpeg()))
    rejected = await new_visit(api, company.shops["north"], rep.id, company.teams["north"], status="rejected")
    await call(api, "POST", f"/api/visits/{rejected}/photos", rep.token, expect=409,
               files=photo_parts(jpeg()))
    assert await counts(api) == before
    r = await api.client.post(path, headers={**api.auth(rep.token), "content-type": "multipart/form-data"},
                              content=b"--x\r\n")
    assert r.status_code == 422  # no boundary
