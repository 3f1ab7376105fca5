"""users: email replaces role and place

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 10:36:05.767454

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = '0002'
down_revision: str | Sequence[str] | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    # Existing users keep their id, name and password; their email starts as NULL.
    op.add_column('users', sa.Column('email', sa.Text(), nullable=True))
    op.drop_column('users', 'role')
    op.drop_column('users', 'place')


def downgrade() -> None:
    """Downgrade schema."""
    # Edited by hand: autogenerate added the NOT NULL columns without a value, which fails
    # as soon as the table has rows. The dropped values cannot come back, so existing rows
    # get a placeholder; the server_default is removed again once every row has one.
    op.add_column('users', sa.Column('place', sa.TEXT(), nullable=False, server_default='unknown'))
    op.add_column('users', sa.Column('role', sa.TEXT(), nullable=False, server_default='developer'))
    op.alter_column('users', 'place', server_default=None)
    op.alter_column('users', 'role', server_default=None)
    op.drop_column('users', 'email')
