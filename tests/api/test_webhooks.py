"""Webhook administration: create (secret shown once), list, read, enable/disable, delete, deliveries."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from storage.webhooks import WebhookOutbox, WebhookStore, enqueue
from tests.api.conftest import REP, Api


async def test_webhook_lifecycle(api: Api) -> None:
    r = await api.client.post("/api/webhooks", json={"url": "https://crm.example.com/fieldtrack",
                                                     "event_types": ["geofenceEnter", "geofenceExit"],
                                                     "device_ids": [3, 4]}, headers=api.auth())
    assert r.status_code == 201, r.text
    created = r.json()
    assert r.headers["location"] == f"/api/webhooks/{created['id']}"
    assert created["secret"].startswith("whsec_") and len(created["secret"]) >= 40
    assert created["enabled"] is True and created["device_ids"] == [3, 4]
    stored = await WebhookStore(api.pool).get(created["id"])
    assert stored.secret == created["secret"]

    r = await api.client.get(f"/api/webhooks/{created['id']}", headers=api.auth())
    assert r.status_code == 200 and "secret" not in r.json()
    assert r.json()["event_types"] == ["geofenceEnter", "geofenceExit"]

    r = await api.client.patch(f"/api/webhooks/{created['id']}", json={"enabled": False}, headers=api.auth())
    assert r.status_code == 200 and r.json()["enabled"] is False and "secret" not in r.json()
    assert not (await WebhookStore(api.pool).get(created["id"])).enabled
    r = await api.client.patch(f"/api/webhooks/{created['id']}", json={"enabled": True, "device_ids": []},
                               headers=api.auth())
    assert r.json()["enabled"] is True and r.json()["device_ids"] == []
    assert r.json()["url"] == "https://crm.example.com/fieldtrack"

    r = await api.client.delete(f"/api/webhooks/{created['id']}", headers=api.auth())
    assert r.status_code == 204
    r = await api.client.get(f"/api/webhooks/{created['id']}", headers=api.auth())
    assert r.status_code == 404 and r.json()["error"] == "not_found"
    r = await api.client.delete(f"/api/webhooks/{created['id']}", headers=api.auth())
    assert r.status_code == 404


async def test_a_given_secret_is_kept_and_each_generated_one_differs(api: Api) -> None:
    given = "my-own-secret-of-some-length"
    r = await api.client.post("/api/webhooks", json={"url": "http://10.0.0.5:8080/h", "secret": given},
                              headers=api.auth())
    assert r.status_code == 201 and r.json()["secret"] == given
    secrets = set()
    for _ in range(3):
        r = await api.client.post("/api/webhooks", json={"url": "http://10.0.0.5:8080/h"}, headers=api.auth())
        secrets.add(r.json()["secret"])
    assert len(secrets) == 3
    r = await api.client.get("/api/webhooks?limit=2&offset=1", headers=api.auth())
    page = r.json()
    assert r.status_code == 200 and page["total"] == 4 and len(page["items"]) == 2
    assert all("secret" not in w for w in page["items"])
    assert [w["id"] for w in page["items"]] == sorted(w["id"] for w in page["items"])


@pytest.mark.parametrize("url", ["ftp://example.com/x", "example.com/hook", "http://", "https:///path",
                                 "javascript:alert(1)", "http://exa mple.com/", "http://example.com:99999/",
                                 "", "file:///etc/passwd"])
async def test_a_url_that_is_not_http_is_refused(api: Api, url: str) -> None:
    r = await api.client.post("/api/webhooks", json={"url": url}, headers=api.auth())
    assert r.status_code == 422 and r.json()["error"] == "invalid"
    assert any("url" in p["problem"] or "url" in p["where"] for p in r.json()["detail"])


async def test_other_bad_input_is_a_422(api: Api) -> None:
    ok = {"url": "https://example.com/h"}
    for body in ({**ok, "secret": "short"}, {**ok, "event_types": ["no spaces"]},
                 {**ok, "device_ids": [2**63]}, {**ok, "device_ids": ["x"]}):
        r = await api.client.post("/api/webhooks", json=body, headers=api.auth())
        assert r.status_code == 422, body
    created = (await api.client.post("/api/webhooks", json=ok, headers=api.auth())).json()
    r = await api.client.patch(f"/api/webhooks/{created['id']}", json={"url": "gopher://x"},
                               headers=api.auth())
    assert r.status_code == 422
    assert (await api.client.get("/api/webhooks/99999999999999999999", headers=api.auth())).status_code == 422


async def test_only_admins_manage_webhooks(api: Api) -> None:
    created = (await api.client.post("/api/webhooks", json={"url": "https://example.com/h"},
                                     headers=api.auth())).json()
    wid = created["id"]
    calls = [("POST", "/api/webhooks", {"url": "https://example.com/h"}), ("GET", "/api/webhooks", None),
             ("GET", f"/api/webhooks/{wid}", None), ("PATCH", f"/api/webhooks/{wid}", {"enabled": False}),
             ("DELETE", f"/api/webhooks/{wid}", None), ("GET", f"/api/webhooks/{wid}/deliveries", None)]
    for method, path, body in calls:
        r = await api.client.request(method, path, json=body, headers=api.auth(REP))
        assert r.status_code == 403 and r.json()["error"] == "forbidden", (method, path)
        assert (await api.client.request(method, path, json=body)).status_code == 401
    assert (await WebhookStore(api.pool).get(wid)).enabled  # nothing changed
    assert (await WebhookStore(api.pool).page(10, 0))[1] == 1


async def test_deliveries_show_attempts_and_the_last_error(api: Api) -> None:
    created = (await api.client.post("/api/webhooks", json={"url": "https://example.com/h"},
                                     headers=api.auth())).json()
    t = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
    async with api.pool.connection() as conn, conn.transaction():
        cur = await conn.execute("INSERT INTO devices (unique_id, name) VALUES ('d1', 'D') RETURNING id")
        dev = (await cur.fetchone() or [0])[0]
        cur = await conn.execute(
            "INSERT INTO events (device_id, time, type, latitude, longitude, emitted_time, emitted_key)"
            " VALUES (%s, %s, 'alarm', 0, 0, %s, 1), (%s, %s, 'ignitionOn', 0, 0, %s, 1) RETURNING id",
            (dev, t, t, dev, t, t))
        ids = [row[0] for row in await cur.fetchall()]
        assert await enqueue(conn, ids) == 2
    outbox = WebhookOutbox(api.pool)
    claims = await outbox.claim(10, lease_s=60)
    await outbox.failed(claims[0], "HTTP 502: bad gateway")
    await outbox.delivered(claims[1])
    r = await api.client.get(f"/api/webhooks/{created['id']}/deliveries", headers=api.auth())
    assert r.status_code == 200 and len(r.json()) == 2
    r = await api.client.get(f"/api/webhooks/{created['id']}/deliveries?state=pending", headers=api.auth())
    [pending] = r.json()
    assert pending["event_id"] == claims[0].event["id"] and pending["attempts"] == 1
    assert pending["last_error"] == "HTTP 502: bad gateway"
    r = await api.client.get(f"/api/webhooks/{created['id']}/deliveries?state=delivered", headers=api.auth())
    assert [d["event_id"] for d in r.json()] == [claims[1].event["id"]]
    r = await api.client.get("/api/webhooks/424242/deliveries", headers=api.auth())
    assert r.status_code == 404
