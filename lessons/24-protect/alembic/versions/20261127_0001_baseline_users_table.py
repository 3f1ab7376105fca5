"""baseline: users table as lesson 14 left it

Revision ID: 0001
Revises:
Create Date: 2026-11-27 10:36:04.709456

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

# revision identifiers, used by Alembic.
revision: str = '0001'
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    # A database from lessons 10-14 already has this table (made by schema.sql or
    # create_all) with its rows: adopt it. Only an empty database gets it created.
    # (With --sql there is no database to look at: the SQL is written for an empty one.)
    if not context.is_offline_mode():
        inspector = sa.inspect(op.get_bind())
        if inspector.has_table('users'):
            # Lesson 10's table predates password_hash (lesson 11 added it): add what is missing.
            if 'password_hash' not in {column['name'] for column in inspector.get_columns('users')}:
                op.add_column('users', sa.Column('password_hash', sa.Text(), nullable=True))
            return
    op.create_table('users',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('role', sa.Text(), nullable=False),
    sa.Column('place', sa.Text(), nullable=False),
    sa.Column('password_hash', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table('users')
