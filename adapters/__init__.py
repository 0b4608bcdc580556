"""I/O shells (installed as ``gateway.adapters``): TCP, MQTT and OCPP WebSocket listeners."""
