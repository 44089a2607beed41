"""Attribute names Fieldtrack uses, with units in the name, and how Traccar's names map to them.

Decoders write ``position.attributes[BATTERY_PCT] = 87``. The Traccar map lets tests compare our
decodes with Traccar's expected values (and helps users moving from Traccar read our data).
Alarm *values* keep Traccar's vocabulary (``sos``, ``powerCut``, ``lowBattery``, ...) because
integrations and users already know it.
"""

from __future__ import annotations

import re

ALARM = "alarm"
EVENT = "event"
STATUS = "status"
RESULT = "result"  # text answer to a command
IGNITION = "ignition"
MOTION = "motion"
CHARGE = "charge"
BLOCKED = "blocked"
DOOR = "door"
ARMED = "armed"
POWER_V = "power_v"  # external supply voltage
BATTERY_V = "battery_v"
BATTERY_PCT = "battery_pct"
ODOMETER_M = "odometer_m"
TRIP_ODOMETER_M = "trip_odometer_m"
ENGINE_HOURS_S = "engine_hours_s"
SATELLITES = "satellites"
SATELLITES_VISIBLE = "satellites_visible"
RSSI = "rssi"
GSM_SIGNAL = "gsm_signal"
PDOP = "pdop"
VDOP = "vdop"
FUEL = "fuel"
FUEL_PCT = "fuel_pct"
RPM = "rpm"
OBD_SPEED_KMH = "obd_speed_kmh"
DRIVER_UNIQUE_ID = "driver_unique_id"
ICCID = "iccid"
IMSI = "imsi"
VIN = "vin"
SERIAL = "serial"
STEPS = "steps"
HUMIDITY_PCT = "humidity_pct"
INPUT = "input"
OUTPUT = "output"
OUTDATED = "outdated"
ARCHIVE = "archive"  # position replayed from the device's black box
INDEX = "index"  # device's own sequence number
CELL_TOWERS = "cell_towers"  # list of {mcc, mnc, lac, cid, rssi}
WIFI = "wifi"  # list of {mac, rssi}
VERSION_FW = "version_fw"
VERSION_HW = "version_hw"
NETWORK_TECHNOLOGY = "network_technology"
DRIVING_TIME_S = "driving_time_s"
MOCK = "mock"  # the phone reported a mock (fake) location provider
ACTIVITY = "activity"

# Traccar key -> (our key, factor applied to Traccar's value to get ours).
TRACCAR_KEYS: dict[str, tuple[str, float]] = {
    "alarm": (ALARM, 1),
    "event": (EVENT, 1),
    "status": (STATUS, 1),
    "result": (RESULT, 1),
    "ignition": (IGNITION, 1),
    "motion": (MOTION, 1),
    "charge": (CHARGE, 1),
    "blocked": (BLOCKED, 1),
    "door": (DOOR, 1),
    "armed": (ARMED, 1),
    "power": (POWER_V, 1),
    "battery": (BATTERY_V, 1),
    "batteryLevel": (BATTERY_PCT, 1),
    "odometer": (ODOMETER_M, 1),
    "tripOdometer": (TRIP_ODOMETER_M, 1),
    "hours": (ENGINE_HOURS_S, 0.001),  # Traccar keeps engine hours in milliseconds
    "sat": (SATELLITES, 1),
    "satVisible": (SATELLITES_VISIBLE, 1),
    "rssi": (RSSI, 1),
    "pdop": (PDOP, 1),
    "vdop": (VDOP, 1),
    "fuel": (FUEL, 1),
    "fuelLevel": (FUEL_PCT, 1),
    "rpm": (RPM, 1),
    "obdSpeed": (OBD_SPEED_KMH, 1),
    "driverUniqueId": (DRIVER_UNIQUE_ID, 1),
    "iccid": (ICCID, 1),
    "imsi": (IMSI, 1),
    "vin": (VIN, 1),
    "serial": (SERIAL, 1),
    "steps": (STEPS, 1),
    "humidity": (HUMIDITY_PCT, 1),
    "input": (INPUT, 1),
    "output": (OUTPUT, 1),
    "archive": (ARCHIVE, 1),
    "index": (INDEX, 1),
    "versionFw": (VERSION_FW, 1),
    "versionHw": (VERSION_HW, 1),
    "networkTechnology": (NETWORK_TECHNOLOGY, 1),
    "drivingTime": (DRIVING_TIME_S, 1),
    "eventFiles": ("event_files", 1),
}

_TEMP = re.compile(r"^temp(\d+)$")
_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


def from_traccar(key: str) -> tuple[str, float]:
    """Our name (and scale) for a Traccar attribute key.

    ``tempN`` becomes ``tempN_c``; any other unlisted key is snake-cased (``tag1Temp`` ->
    ``tag1_temp``), so protocol modules that add vendor keys follow one rule.
    """
    if key in TRACCAR_KEYS:
        return TRACCAR_KEYS[key]
    if _TEMP.match(key):
        return (key + "_c", 1)
    return (_CAMEL.sub("_", key).lower(), 1)
