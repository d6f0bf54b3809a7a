"""Local authorization lists kept in step with the organisation's tokens (see service.py)."""
