"""Charging sessions (OCPP transactions) and their meter readings."""
