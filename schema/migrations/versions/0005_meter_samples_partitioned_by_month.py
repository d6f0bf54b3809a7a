"""meter samples partitioned by month on PostgreSQL

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24

PostgreSQL only (SQLite keeps one table): the table becomes a parent partitioned by range of
`sampled_at`, with a DEFAULT partition and one partition per month from 13 months back to 3
ahead; existing rows are copied in. Older months than that (a wrong charger clock) stay in the
DEFAULT partition. The scheduled partition job creates later months (schema/partitions.py).
"""
from datetime import UTC, datetime
from typing import Sequence, Union

from alembic import op

from schema.partitions import DEFAULT_PARTITION, MONTHS_AHEAD, add_months, month_start, partition_name

revision: str = '0005'
down_revision: Union[str, None] = '0004'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

KEY = "station_id, connector_id, sampled_at, measurand, phase, location, context"
MONTHS_BACK = 13


def _keys_and_indexes() -> None:
    op.execute(f"ALTER TABLE meter_sample ADD CONSTRAINT pk_meter_sample PRIMARY KEY ({KEY})")
    op.execute(
        "ALTER TABLE meter_sample ADD CONSTRAINT fk_meter_sample_station "
        "FOREIGN KEY (station_id) REFERENCES charging_station (id)"
    )
    op.execute(
        "ALTER TABLE meter_sample ADD CONSTRAINT fk_meter_sample_transaction "
        "FOREIGN KEY (transaction_id) REFERENCES charging_transaction (id)"
    )
    op.execute("CREATE INDEX ix_meter_sample_tx_time ON meter_sample (transaction_id, sampled_at)")
    op.execute("CREATE INDEX ix_meter_sample_station_time ON meter_sample (station_id, sampled_at)")


def upgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    op.execute("ALTER TABLE meter_sample RENAME TO meter_sample_flat")
    op.execute("ALTER TABLE meter_sample_flat RENAME CONSTRAINT pk_meter_sample TO pk_meter_sample_flat")
    op.execute("ALTER INDEX ix_meter_sample_tx_time RENAME TO ix_meter_sample_flat_tx_time")
    op.execute("ALTER INDEX ix_meter_sample_station_time RENAME TO ix_meter_sample_flat_station_time")
    op.execute(
        "CREATE TABLE meter_sample (LIKE meter_sample_flat INCLUDING DEFAULTS) PARTITION BY RANGE (sampled_at)"
    )
    _keys_and_indexes()
    op.execute(f"CREATE TABLE {DEFAULT_PARTITION} PARTITION OF meter_sample DEFAULT")
    current = month_start(datetime.now(UTC))
    for n in range(-MONTHS_BACK, MONTHS_AHEAD + 1):
        month = add_months(current, n)
        op.execute(
            f"CREATE TABLE {partition_name(month)} PARTITION OF meter_sample FOR VALUES "
            f"FROM ('{month.isoformat()} 00:00:00+00') TO ('{add_months(month, 1).isoformat()} 00:00:00+00')"
        )
    op.execute("INSERT INTO meter_sample SELECT * FROM meter_sample_flat")
    op.execute("DROP TABLE meter_sample_flat")


def downgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    op.execute("CREATE TABLE meter_sample_flat (LIKE meter_sample INCLUDING DEFAULTS)")
    op.execute("INSERT INTO meter_sample_flat SELECT * FROM meter_sample")
    op.execute("DROP TABLE meter_sample CASCADE")
    op.execute("ALTER TABLE meter_sample_flat RENAME TO meter_sample")
    _keys_and_indexes()
