"""Serviceability: incidents, outages, work orders, inspections and uptime."""
