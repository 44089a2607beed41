"""Asyncio listeners (TCP, UDP, HTTP), sessions, per-device ordering, acks and durability."""
