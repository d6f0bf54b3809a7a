"""The shared contract of ChargeNet: tables, units, database access, domain events and the bus.

`api/` and `gateway/` both build on this package and never import each other.
"""
