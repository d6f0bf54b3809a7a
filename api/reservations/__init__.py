"""Reservations (OCPP Reservation profile): a connector held for one driver for a while."""
