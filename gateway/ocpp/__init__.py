"""OCPP 1.6J and 2.0.1 over WebSocket: messages, the OCPP-J RPC framing, the central system."""
