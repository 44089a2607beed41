"""The FastAPI application, built from explicit dependencies (no globals)."""

from __future__ import annotations

from fastapi import FastAPI

from api import errors
from api.deps import ApiDeps
from api.routes import (
    analytics,
    customers,
    devices,
    dispatch,
    events,
    geofences,
    groups,
    health,
    mileage,
    positions,
    reports,
    status,
    stream,
    teams,
    timeline,
    users,
    visit_reports,
    visits,
    webhooks,
)


def create_app(deps: ApiDeps) -> FastAPI:
    app = FastAPI(
        title="Fieldtrack",
        version=deps.version,
        description="GPS tracking for field sales teams and their vehicles. "
        "Every route except /api/health needs `Authorization: Bearer <token>`.",
        docs_url="/docs",
        openapi_url="/openapi.json",
    )
    app.state.deps = deps
    errors.install(app)
    for router in (health.router, devices.router, positions.router, geofences.router, events.router,
                   groups.router):
        app.include_router(router, prefix="/api")
    app.include_router(webhooks.router, prefix="/api")
    app.include_router(stream.router, prefix="/api")
    app.include_router(status.router, prefix="/api")
    app.include_router(reports.router, prefix="/api")
    app.include_router(mileage.router, prefix="/api")
    for router in (users.router, users.me_router, teams.router):
        app.include_router(router, prefix="/api")
    app.include_router(customers.router, prefix="/api")
    app.include_router(dispatch.router, prefix="/api")
    app.include_router(visits.router, prefix="/api")
    app.include_router(analytics.router, prefix="/api")
    app.include_router(visit_reports.router, prefix="/api")
    app.include_router(timeline.router, prefix="/api")
    return app
