"""initial schema: keyring and patients

Revision ID: 0001
Revises:
Create Date: 2026-11-29 15:01:18.164735
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "data_keys",
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("root_version", sa.Integer(), nullable=False),
        sa.Column("wrapped", sa.LargeBinary(), nullable=True),
        sa.Column(
            "state",
            sa.Enum(
                "active", "retired", "destroyed", name="keystate", native_enum=False, length=16
            ),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("destroyed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("owner_id", "version", name=op.f("pk_data_keys")),
    )
    with op.batch_alter_table("data_keys", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_data_keys_root_version"), ["root_version"], unique=False
        )

    op.create_table(
        "patients",
        sa.Column(
            "status",
            sa.Enum("active", "shredded", name="patientstatus", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column("given_names", sa.LargeBinary(), nullable=True),
        sa.Column("family_name", sa.LargeBinary(), nullable=True),
        sa.Column("birth_date", sa.LargeBinary(), nullable=True),
        sa.Column("sex", sa.LargeBinary(), nullable=True),
        sa.Column("email", sa.LargeBinary(), nullable=True),
        sa.Column("phone", sa.LargeBinary(), nullable=True),
        sa.Column("address", sa.LargeBinary(), nullable=True),
        sa.Column("nir", sa.LargeBinary(), nullable=True),
        sa.Column("email_index", sa.Integer(), nullable=True),
        sa.Column("phone_index", sa.Integer(), nullable=True),
        sa.Column("nir_index", sa.Integer(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_patients")),
    )
    with op.batch_alter_table("patients", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_patients_email_index"), ["email_index"], unique=False)
        batch_op.create_index(batch_op.f("ix_patients_nir_index"), ["nir_index"], unique=False)
        batch_op.create_index(batch_op.f("ix_patients_phone_index"), ["phone_index"], unique=False)

    op.create_table(
        "root_rotations",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("target_version", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("rewrapped", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_root_rotations")),
        sa.UniqueConstraint("target_version", name=op.f("uq_root_rotations_target_version")),
    )


def downgrade() -> None:
    op.drop_table("root_rotations")
    with op.batch_alter_table("patients", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_patients_phone_index"))
        batch_op.drop_index(batch_op.f("ix_patients_nir_index"))
        batch_op.drop_index(batch_op.f("ix_patients_email_index"))

    op.drop_table("patients")
    with op.batch_alter_table("data_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_data_keys_root_version"))

    op.drop_table("data_keys")
