"""Firmware campaigns: one image rolled out to many stations in waves, watched to the end."""
