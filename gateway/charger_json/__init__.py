"""Chargers that publish JSON over MQTT: the versioned message set (silkgate charger v1) and its
records, the same as OCPP's (charger status, meter values, charging sessions, charger events)."""
