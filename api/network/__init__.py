"""The charging network as apps see it: locations, stations, connectors and live status."""
