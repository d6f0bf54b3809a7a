"""local authorization lists

Revision ID: 0012
Revises: 0009
Create Date: 2026-11-24 05:00:00.000000
"""
from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import schema.timeutil


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('local_auth_list_state',
    sa.Column('station_id', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=True),
    sa.Column('entry_count', sa.Integer(), nullable=False),
    sa.Column('synced_at', schema.timeutil.UTCDateTime(timezone=True), nullable=True),
    sa.Column('attempted_at', schema.timeutil.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_result', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True),
    sa.Column('last_message', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=True),
    sa.Column('pending', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['station_id'], ['charging_station.id'], ),
    sa.PrimaryKeyConstraint('station_id')
    )
    with op.batch_alter_table('local_auth_list_state', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_local_auth_list_state_pending'), ['pending'], unique=False)

    op.create_table('local_auth_list_entry',
    sa.Column('station_id', sa.Integer(), nullable=False),
    sa.Column('id_token', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('expires_at', schema.timeutil.UTCDateTime(timezone=True), nullable=True),
    sa.Column('parent_token', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=True),
    sa.ForeignKeyConstraint(['station_id'], ['charging_station.id'], ),
    sa.PrimaryKeyConstraint('station_id', 'id_token', name='pk_local_auth_list_entry')
    )
    with op.batch_alter_table('id_token', schema=None) as batch_op:
        batch_op.add_column(sa.Column('updated_at', schema.timeutil.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('id_token', schema=None) as batch_op:
        batch_op.drop_column('updated_at')

    op.drop_table('local_auth_list_entry')
    with op.batch_alter_table('local_auth_list_state', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_local_auth_list_state_pending'))

    op.drop_table('local_auth_list_state')
