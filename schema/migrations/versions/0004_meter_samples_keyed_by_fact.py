"""meter samples keyed by the fact they record (resends are stored once)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24

The table is rebuilt (both SQLite and PostgreSQL need that to change a primary key): rows are
copied with absent phase/location/context as '' and duplicates that resends already caused are
dropped on the way.
"""
from typing import Sequence, Union

import sqlalchemy as sa
import sqlmodel
from alembic import op

import schema.timeutil

revision: str = '0004'
down_revision: Union[str, None] = '0003'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

COLUMNS = "station_id, connector_id, transaction_id, sampled_at, measurand, phase, location, context, unit, value"
SELECT_OLD = (
    "SELECT station_id, connector_id, transaction_id, sampled_at, measurand, "
    "COALESCE(phase, ''), COALESCE(location, ''), COALESCE(context, ''), unit, value "
    "FROM meter_sample ORDER BY id"
)


def _new_table(name: str) -> None:
    op.create_table(
        name,
        sa.Column('station_id', sa.Integer(), nullable=False),
        sa.Column('connector_id', sa.Integer(), nullable=False),
        sa.Column('transaction_id', sa.Integer(), nullable=True),
        sa.Column('sampled_at', schema.timeutil.UTCDateTime(timezone=True), nullable=False),
        sa.Column('measurand', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column('phase', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
        sa.Column('location', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
        sa.Column('context', sqlmodel.sql.sqltypes.AutoString(length=24), nullable=False),
        sa.Column('unit', sqlmodel.sql.sqltypes.AutoString(length=12), nullable=True),
        sa.Column('value', sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(['station_id'], ['charging_station.id'], name='fk_meter_sample_station'),
        sa.ForeignKeyConstraint(
            ['transaction_id'], ['charging_transaction.id'], name='fk_meter_sample_transaction'
        ),
        sa.PrimaryKeyConstraint(
            'station_id', 'connector_id', 'sampled_at', 'measurand', 'phase', 'location', 'context',
            name='pk_meter_sample',
        ),
    )


def upgrade() -> None:
    _new_table('meter_sample_keyed')
    if op.get_bind().dialect.name == 'sqlite':
        op.execute(f"INSERT OR IGNORE INTO meter_sample_keyed ({COLUMNS}) {SELECT_OLD}")
    else:
        op.execute(f"INSERT INTO meter_sample_keyed ({COLUMNS}) {SELECT_OLD} ON CONFLICT DO NOTHING")
    op.drop_table('meter_sample')
    op.rename_table('meter_sample_keyed', 'meter_sample')
    op.create_index('ix_meter_sample_station_time', 'meter_sample', ['station_id', 'sampled_at'])
    op.create_index('ix_meter_sample_tx_time', 'meter_sample', ['transaction_id', 'sampled_at'])


def downgrade() -> None:
    op.create_table(
        'meter_sample_numbered',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('station_id', sa.Integer(), nullable=False),
        sa.Column('connector_id', sa.Integer(), nullable=False),
        sa.Column('transaction_id', sa.Integer(), nullable=True),
        sa.Column('sampled_at', schema.timeutil.UTCDateTime(timezone=True), nullable=False),
        sa.Column('measurand', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column('phase', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=True),
        sa.Column('location', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=True),
        sa.Column('context', sqlmodel.sql.sqltypes.AutoString(length=24), nullable=True),
        sa.Column('unit', sqlmodel.sql.sqltypes.AutoString(length=12), nullable=True),
        sa.Column('value', sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(['station_id'], ['charging_station.id']),
        sa.ForeignKeyConstraint(['transaction_id'], ['charging_transaction.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.execute(
        f"INSERT INTO meter_sample_numbered ({COLUMNS}) SELECT station_id, connector_id, transaction_id, "
        "sampled_at, measurand, NULLIF(phase, ''), NULLIF(location, ''), NULLIF(context, ''), unit, value "
        "FROM meter_sample ORDER BY sampled_at"
    )
    op.drop_table('meter_sample')
    op.rename_table('meter_sample_numbered', 'meter_sample')
    op.create_index('ix_meter_sample_station_time', 'meter_sample', ['station_id', 'sampled_at'])
    op.create_index('ix_meter_sample_tx_time', 'meter_sample', ['transaction_id', 'sampled_at'])
