"""The OCPP-J gateway: accepts chargers over WebSocket and turns what they report into facts."""
