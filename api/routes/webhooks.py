"""Webhooks (admin only): where events are POSTed. The secret is shown once, when created."""

from __future__ import annotations

import secrets
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Response

from api.deps import Admin, Deps
from api.schemas import WebhookCreated, WebhookDeliveryOut, WebhookIn, WebhookOut, WebhookPage, WebhookPatch
from storage.webhooks import Webhook, WebhookStore

router = APIRouter(prefix="/webhooks", tags=["webhooks"])

WebhookId = Annotated[int, Path(ge=1, le=2**63 - 1)]


def _out(w: Webhook) -> WebhookOut:
    return WebhookOut(id=w.id, url=w.url, event_types=w.event_types, device_ids=w.device_ids,
                      enabled=w.enabled, created_at=w.created_at)


@router.post("", response_model=WebhookCreated, status_code=201)
async def create_webhook(body: WebhookIn, d: Deps, _: Admin, response: Response) -> WebhookCreated:
    secret = body.secret or "whsec_" + secrets.token_urlsafe(32)
    hook = await WebhookStore(d.db()).create(body.url, secret, body.event_types, body.device_ids,
                                             body.enabled)
    response.headers["Location"] = f"/api/webhooks/{hook.id}"
    return WebhookCreated(**_out(hook).model_dump(), secret=hook.secret)


@router.get("", response_model=WebhookPage)
async def list_webhooks(
    d: Deps,
    _: Admin,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=2**31)] = 0,
) -> WebhookPage:
    items, total = await WebhookStore(d.db()).page(limit, offset)
    return WebhookPage(items=[_out(w) for w in items], total=total, limit=limit, offset=offset)


@router.get("/{webhook_id}", response_model=WebhookOut)
async def get_webhook(webhook_id: WebhookId, d: Deps, _: Admin) -> WebhookOut:
    return _out(await WebhookStore(d.db()).get(webhook_id))


@router.patch("/{webhook_id}", response_model=WebhookOut)
async def patch_webhook(webhook_id: WebhookId, body: WebhookPatch, d: Deps, _: Admin) -> WebhookOut:
    """Enable or disable (deliveries wait while disabled), or change the URL or filters."""
    changes = {k: v for k, v in body.model_dump(exclude_unset=True).items() if v is not None}
    return _out(await WebhookStore(d.db()).update(webhook_id, changes))


@router.delete("/{webhook_id}", status_code=204)
async def delete_webhook(webhook_id: WebhookId, d: Deps, _: Admin) -> Response:
    await WebhookStore(d.db()).delete(webhook_id)
    return Response(status_code=204)


@router.get("/{webhook_id}/deliveries", response_model=list[WebhookDeliveryOut])
async def list_deliveries(
    webhook_id: WebhookId,
    d: Deps,
    _: Admin,
    state: Literal["pending", "delivered", "failed"] | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[WebhookDeliveryOut]:
    """The newest deliveries, with attempts and the last error, to see why a receiver misses events."""
    store = WebhookStore(d.db())
    await store.get(webhook_id)
    return [WebhookDeliveryOut(**r) for r in await store.deliveries(webhook_id, state, limit)]
