"""What schema comparisons (autogenerate, the contract test) look at: the models' tables, not
the monthly partitions PostgreSQL keeps under `meter_sample` (schema/partitions.py)."""

from __future__ import annotations

from typing import Any

from schema.partitions import is_partition_table


def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
    if type_ == "table" and name is not None:
        return not is_partition_table(name)
    return True
