"""The protocols this server speaks, listed explicitly (no scanning): name -> Protocol."""

from __future__ import annotations

from protocols import (
    fieldtrack_json,
    gl200,
    gps103,
    gpsgate,
    gt06,
    h02,
    meitrack,
    nmea,
    osmand,
    owntracks,
    teltonika,
    tk103,
    watch,
)
from protocols.base import Protocol

PROTOCOLS: dict[str, Protocol] = {
    p.name: p
    for p in (
        osmand.PROTOCOL,
        gt06.PROTOCOL,
        h02.PROTOCOL,
        tk103.PROTOCOL,
        gps103.PROTOCOL,
        teltonika.PROTOCOL,
        nmea.PROTOCOL,
        gl200.PROTOCOL,
        meitrack.PROTOCOL,
        watch.PROTOCOL,
        gpsgate.PROTOCOL,
        owntracks.PROTOCOL,
        fieldtrack_json.PROTOCOL,
    )
}


def get(name: str) -> Protocol:
    return PROTOCOLS[name]
