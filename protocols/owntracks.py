"""OwnTracks app messages (iOS, Android, and trackers bridged by qtripp), over MQTT or HTTP.

Spec: the OwnTracks booklet, "JSON" page (https://owntracks.org/booklet/tech/json/). The gateway
routes ``owntracks/<user>/<device>`` and ``.../event`` to this decoder with ``session.unique_id``
already set to ``<user>/<device>``; in HTTP mode the app POSTs the same JSON (one object, or a
list of them) and carries the publish ``topic`` in it, which names the device when the HTTP layer
did not (``owntracks/jane/phone`` -> ``jane/phone``, the id MQTT would give).

``_type`` decides what a message is:

- ``location``: one fix. ``lat``, ``lon`` and ``tst`` (epoch seconds of the fix) are required;
  a message missing them, or with them out of range, is refused.
- ``transition``: a geofence enter/leave, a position with ``event`` = ``geofence_enter`` or
  ``geofence_leave`` and ``geofence_name`` (the waypoint's ``desc``). ``lat``/``lon`` are optional
  in the spec: without them the position is a status report (no location).
- ``encrypted``: refused, we do not hold the apps' secret keys (turn encryption off in the app,
  TLS protects the transport).
- anything else (``lwt``, ``status``, ``waypoint(s)``, ``card``, ``cmd``, ``steps``, ``beacon``,
  ``configuration``, ``request``, and types added later): nothing to store.

A payload is accepted or refused whole. Optional elements of the wrong JSON type are ignored.

======================  ==========================  ========================================
OwnTracks element       Fieldtrack                  Notes
======================  ==========================  ========================================
``tst``                 ``fix_time``                required on location and transition
``created_at``          ``device_time``             when the app built the message
``acc``                 ``accuracy_m``              negative (iOS "invalid") dropped
``alt``                 ``altitude_m``
``vel``                 ``speed_kmh``               already km/h; negative dropped
``cog``                 ``course_deg``              negative dropped
``batt``                ``battery_pct``             0..100
``bs``                  ``battery_status``,         unknown / unplugged / charging / full;
                        ``charge``                  charge is true when charging or full
``t``                   ``trigger``                 ping, circular_region, beacon, response,
                                                    manual, timer, monitoring, location, wifi;
                                                    another letter (trackers) is kept as sent
``conn``                ``connectivity``            wifi / offline / mobile
``m``                   ``monitoring_mode``         quiet / manual / significant / move
``vac``                 ``vertical_accuracy_m``
``p``                   ``pressure_kpa``
``tid``                 ``tracker_id``
``SSID``, ``BSSID``     ``ssid``, ``bssid``
``inregions``           ``in_regions``              list of waypoint names
``inrids``              ``in_region_ids``
``topic``               ``topic``                   HTTP mode only
``poi``, ``tag``        ``poi``, ``tag``            iOS
``mock``                ``mock``                    not in the spec; kept when a client sends it
``event`` + ``desc``    ``event``,                  transition (or a pre-2016 location with
                        ``geofence_name``           event/desc)
``rid``, ``wtst``,      ``geofence_id``,            transition: region id, waypoint creation
``rad``                 ``geofence_created_at``,    time (ISO 8601), region radius
                        ``geofence_radius_m``
qtripp (Queclink)       ``odometer_m`` (km x 1000), ``odometer``, ``hmc``, ``ubatt``, ``uext``,
                        ``engine_hours_s``, ...     ``rpm``, ``flvl``, ``vin``, ``ign``, ``motion``
======================  ==========================  ========================================

MQTT needs no answer from us and the HTTP layer answers the app itself (an empty JSON list
``[]`` is what the booklet suggests), so ``reply`` is always ``None``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from protocols import keys
from protocols.base import Protocol, whole_message
from protocols.json_fields import (
    MAX_PAYLOAD,
    epoch,
    finite_number,
    is_text,
    load,
    text_list,
)
from protocols.model import Decoded, DecodeError, Position, Session

NAME = "owntracks"
MAX_MESSAGES = 10_000  # HTTP mode may batch queued messages; more than this is not a phone

TRIGGER = "trigger"
BATTERY_STATUS = "battery_status"
CONNECTIVITY = "connectivity"
MONITORING_MODE = "monitoring_mode"
GEOFENCE_NAME = "geofence_name"
GEOFENCE_ID = "geofence_id"
GEOFENCE_CREATED_AT = "geofence_created_at"

# Documented types with nothing to store; types added to the apps later are ignored the same way.
NO_POSITION_TYPES = frozenset(
    {"lwt", "status", "waypoint", "waypoints", "card", "cmd", "steps", "beacon", "configuration", "request"}
)

# Booklet "t" letters; transitions add "l" (Android location update) and "w" (Android WiFi).
_TRIGGERS = {"p": "ping", "c": "circular_region", "b": "beacon", "r": "response", "u": "manual",
             "t": "timer", "v": "monitoring", "l": "location", "w": "wifi"}
_BATTERY_STATUS = {0: "unknown", 1: "unplugged", 2: "charging", 3: "full"}
_CHARGING = {1: False, 2: True, 3: True}  # "full" means still on the charger
_CONNECTIVITY = {"w": "wifi", "o": "offline", "m": "mobile"}
_MONITORING = {-1: "quiet", 0: "manual", 1: "significant", 2: "move"}
_EVENTS = {"enter": "geofence_enter", "leave": "geofence_leave"}
_TOPIC = re.compile(r"(?:.*/)?owntracks/([^/]+)/([^/]+)(?:/event)?")

# Plain numbers: (element, attribute, factor, smallest accepted value or None).
_NUMBERS: tuple[tuple[str, str, float, float | None], ...] = (
    ("vac", "vertical_accuracy_m", 1, 0),
    ("p", "pressure_kpa", 1, 0),
    ("rad", "geofence_radius_m", 1, 0),
    # qtripp's Queclink elements, as the booklet lists them (odometer in km, hmc in seconds).
    ("odometer", keys.ODOMETER_M, 1000, None),
    ("hmc", keys.ENGINE_HOURS_S, 1, None),
    ("ubatt", keys.BATTERY_V, 1, None),
    ("uext", keys.POWER_V, 1, None),
    ("rpm", keys.RPM, 1, None),
    ("flvl", keys.FUEL_PCT, 1, None),
)
_TEXTS = (("tid", "tracker_id"), ("SSID", "ssid"), ("BSSID", "bssid"), ("topic", "topic"),
          ("poi", "poi"), ("tag", "tag"), ("vin", keys.VIN))
_FLAGS = (("mock", keys.MOCK), ("ign", keys.IGNITION), ("motion", keys.MOTION))
_TEXT_LISTS = (("inregions", "in_regions"), ("inrids", "in_region_ids"))


def decode(frame: bytes, session: Session) -> Decoded:
    root = load(frame, protocol=NAME)
    messages = root if isinstance(root, list) else [root]
    if len(messages) > MAX_MESSAGES:
        raise DecodeError(f"{NAME}: {len(messages)} messages in one payload (at most {MAX_MESSAGES})", frame)
    positions: list[Position] = []
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise DecodeError(f"{NAME}: message {index} is not a JSON object", frame)
        kind = message.get("_type")
        if not isinstance(kind, str):
            raise DecodeError(f"{NAME}: message {index} has no _type", frame)
        reader = _READERS.get(kind)
        if reader is not None:
            positions.append(reader(message, session.unique_id or _topic_id(message), frame))
        elif kind == "encrypted":
            raise DecodeError(f"{NAME}: encrypted payloads need the key", frame)
    ids = [p.unique_id for p in positions if p.unique_id]
    return Decoded(positions=positions, unique_id=session.unique_id or (ids[0] if ids else None))


def _topic_id(message: dict[str, Any]) -> str | None:
    """``user/device`` from the ``topic`` an HTTP-mode app includes, the id MQTT routing gives."""
    topic = message.get("topic")
    match = _TOPIC.fullmatch(topic) if isinstance(topic, str) else None
    return f"{match[1]}/{match[2]}" if match else None


def _location(message: dict[str, Any], unique_id: str | None, frame: bytes) -> Position:
    lat, lon = _coordinates(message, frame, required=True)
    p = _position(message, unique_id, lat, lon, frame)
    _add_geofence_event(p, message, frame, required=False)
    return p


def _transition(message: dict[str, Any], unique_id: str | None, frame: bytes) -> Position:
    lat, lon = _coordinates(message, frame, required=False)
    p = _position(message, unique_id, lat, lon, frame)
    p.valid = lat is not None
    _add_geofence_event(p, message, frame, required=True)
    created = _optional_time(message.get("wtst"))
    if created is not None:
        p.attributes[GEOFENCE_CREATED_AT] = created.isoformat()
    return p


_READERS: dict[str, Callable[[dict[str, Any], str | None, bytes], Position]] = {
    "location": _location,
    "transition": _transition,
}


def _coordinates(
    message: dict[str, Any], frame: bytes, *, required: bool
) -> tuple[float | None, float | None]:
    raw_lat, raw_lon = message.get("lat"), message.get("lon")
    if not required and raw_lat is None and raw_lon is None:
        return None, None
    lat, lon = finite_number(raw_lat), finite_number(raw_lon)
    if lat is None or lon is None:
        raise DecodeError(f"{NAME}: lat/lon missing or not numbers", frame)
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise DecodeError(f"{NAME}: coordinate out of range ({lat}, {lon})", frame)
    return lat, lon


def _fix_time(message: dict[str, Any], frame: bytes) -> datetime:
    tst = finite_number(message.get("tst"))
    # Android refuses its own messages with tst 0; a missing tst is no fix time at all.
    if tst is None or tst <= 0:
        raise DecodeError(f"{NAME}: tst missing or not a positive epoch", frame)
    return epoch(tst, frame, what=f"{NAME}: tst")


def _position(
    message: dict[str, Any], unique_id: str | None, lat: float | None, lon: float | None, frame: bytes
) -> Position:
    p = Position(fix_time=_fix_time(message, frame), latitude=lat, longitude=lon, unique_id=unique_id)
    p.device_time = _optional_time(message.get("created_at"))
    # The booklet: iOS sends acc/vel/cog only when >= 0, so a negative value is "invalid".
    p.accuracy_m = _at_least(finite_number(message.get("acc")), 0)
    p.altitude_m = finite_number(message.get("alt"))
    p.speed_kmh = _at_least(finite_number(message.get("vel")), 0)
    course = _at_least(finite_number(message.get("cog")), 0)
    p.course_deg = None if course is None else course % 360
    _add_attributes(p.attributes, message)
    return p


def _optional_time(value: object) -> datetime | None:
    """An optional epoch element; like any optional element, ignored when it is not a usable one."""
    seconds = finite_number(value)
    if seconds is None or seconds <= 0:
        return None
    try:
        return epoch(seconds, b"", what=NAME)
    except DecodeError:
        return None


def _at_least(value: float | None, floor: float) -> float | None:
    return value if value is not None and value >= floor else None


def _add_attributes(attributes: dict[str, Any], message: dict[str, Any]) -> None:
    battery = finite_number(message.get("batt"))
    if battery is not None and 0 <= battery <= 100:
        attributes[keys.BATTERY_PCT] = _plain(battery)
    status = _small_int(message.get("bs"))
    if status in _BATTERY_STATUS:
        attributes[BATTERY_STATUS] = _BATTERY_STATUS[status]
        if status in _CHARGING:
            attributes[keys.CHARGE] = _CHARGING[status]
    trigger = message.get("t")
    if is_text(trigger):
        attributes[TRIGGER] = _TRIGGERS.get(trigger, trigger)
    conn = message.get("conn")
    if is_text(conn):
        attributes[CONNECTIVITY] = _CONNECTIVITY.get(conn, conn)
    mode = _small_int(message.get("m"))
    if mode in _MONITORING:
        attributes[MONITORING_MODE] = _MONITORING[mode]
    for element, name, factor, floor in _NUMBERS:
        value = finite_number(message.get(element))
        if value is not None and (floor is None or value >= floor):
            attributes[name] = _plain(value * factor)
    for element, name in _TEXTS:
        if is_text(message.get(element)):
            attributes[name] = message[element]
    for element, name in _FLAGS:
        if isinstance(message.get(element), bool):
            attributes[name] = message[element]
    for element, name in _TEXT_LISTS:
        names = text_list(message.get(element))
        if names is not None:
            attributes[name] = names


def _small_int(value: object) -> int | None:
    # bool is an int in Python: ``"bs": true`` must not read as 1 (unplugged).
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _plain(value: float) -> int | float:
    """Whole numbers stay integers in attributes (``batt: 75`` is stored as 75, not 75.0)."""
    return int(value) if value.is_integer() else value


def _add_geofence_event(p: Position, message: dict[str, Any], frame: bytes, *, required: bool) -> None:
    raw = message.get("event")
    event = _EVENTS.get(raw) if isinstance(raw, str) else None
    if event is None:
        if required:
            raise DecodeError(f"{NAME}: transition event is not enter/leave", frame)
        return
    p.attributes[keys.EVENT] = event
    if is_text(message.get("desc")):
        p.attributes[GEOFENCE_NAME] = message["desc"]
    if is_text(message.get("rid")):
        p.attributes[GEOFENCE_ID] = message["rid"]


PROTOCOL = Protocol(
    name=NAME,
    transports=("mqtt", "http"),
    default_port=0,  # no port of its own: MQTT through the broker, HTTP through the web server
    next_frame=whole_message,
    decode=decode,
    max_frame=MAX_PAYLOAD,
)


# --- encoder (simulators, tests): what the app publishes --------------------------------------


def encode_location(
    fix_time: datetime,
    lat: float,
    lon: float,
    *,
    accuracy_m: float | None = None,
    altitude_m: float | None = None,
    speed_kmh: float | None = None,
    course_deg: float | None = None,
    battery_pct: int | None = None,
    tracker_id: str | None = None,
    trigger: str | None = None,
    mock: bool | None = None,
    created_at: datetime | None = None,
) -> bytes:
    """A ``_type: location`` message as the apps send it: whole seconds in ``tst``, integers for
    ``acc``, ``alt``, ``vel`` (km/h) and ``cog`` (the booklet's types); ``trigger`` is the letter."""
    message: dict[str, Any] = {"_type": "location", "lat": lat, "lon": lon, "tst": int(fix_time.timestamp())}
    for element, value in (("acc", accuracy_m), ("alt", altitude_m), ("vel", speed_kmh), ("cog", course_deg)):
        if value is not None:
            message[element] = round(value)
    if battery_pct is not None:
        message["batt"] = battery_pct
    if tracker_id is not None:
        message["tid"] = tracker_id
    if trigger is not None:
        message["t"] = trigger
    if mock is not None:
        message["mock"] = mock
    if created_at is not None:
        message["created_at"] = int(created_at.timestamp())
    return json.dumps(message, separators=(",", ":")).encode()
