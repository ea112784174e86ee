"""Experiments: declared winners, automatic declaration settings, running always-valid looks.

Revision ID: 0011_experiments
Revises: 0010_metrics
Create Date: 2026-11-23 02:34:16.250227+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0011_experiments"
down_revision: str | None = "0010_metrics"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "experiment_declarations",
        sa.Column("campaign_id", sa.Uuid(), nullable=False),
        sa.Column("sequence_id", sa.Uuid(), nullable=False),
        sa.Column("sequence_version_id", sa.Uuid(), nullable=True),
        sa.Column("step_key", sa.String(length=100), nullable=False),
        sa.Column("variant", sa.String(length=64), nullable=False),
        sa.Column("metric", sa.String(length=16), nullable=False),
        sa.Column("declared_by", sa.String(length=16), nullable=False),
        sa.Column("apply_to_remaining", sa.Boolean(), nullable=False),
        sa.Column("snapshot", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("member_id", sa.Uuid(), nullable=True),
        sa.Column("api_key_id", sa.Uuid(), nullable=True),
        sa.Column("declared_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_experiment_declarations_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_experiment_declarations_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_experiment_declarations")),
        sa.UniqueConstraint("campaign_id", "step_key", name="uq_experiment_declarations_step"),
    )
    op.create_index(
        op.f("ix_experiment_declarations_workspace_id"),
        "experiment_declarations",
        ["workspace_id"],
        unique=False,
    )
    op.create_table(
        "experiment_looks",
        sa.Column("campaign_id", sa.Uuid(), nullable=False),
        sa.Column("step_key", sa.String(length=100), nullable=False),
        sa.Column("metric", sa.String(length=16), nullable=False),
        sa.Column("variant", sa.String(length=64), nullable=False),
        sa.Column("p_value", sa.Float(), nullable=False),
        sa.Column("interval_low", sa.Float(), nullable=True),
        sa.Column("interval_high", sa.Float(), nullable=True),
        sa.Column("looks", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_experiment_looks_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_experiment_looks_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_experiment_looks")),
        sa.UniqueConstraint(
            "campaign_id", "step_key", "metric", "variant", name="uq_experiment_looks_arm"
        ),
    )
    op.create_index(
        op.f("ix_experiment_looks_workspace_id"), "experiment_looks", ["workspace_id"], unique=False
    )
    op.create_table(
        "experiment_settings",
        sa.Column("campaign_id", sa.Uuid(), nullable=False),
        sa.Column("step_key", sa.String(length=100), nullable=False),
        sa.Column("metric", sa.String(length=16), nullable=False),
        sa.Column("auto_declare", sa.Boolean(), nullable=False),
        sa.Column("min_sample", sa.Integer(), nullable=False),
        sa.Column("alpha", sa.Float(), nullable=False),
        sa.Column("apply_to_remaining", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_experiment_settings_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_experiment_settings_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_experiment_settings")),
        sa.UniqueConstraint("campaign_id", "step_key", name="uq_experiment_settings_step"),
    )
    op.create_index(
        "ix_experiment_settings_auto",
        "experiment_settings",
        ["id"],
        unique=False,
        postgresql_where=sa.text("auto_declare"),
    )
    op.create_index(
        op.f("ix_experiment_settings_workspace_id"),
        "experiment_settings",
        ["workspace_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_experiment_settings_workspace_id"), table_name="experiment_settings")
    op.drop_index(
        "ix_experiment_settings_auto",
        table_name="experiment_settings",
        postgresql_where=sa.text("auto_declare"),
    )
    op.drop_table("experiment_settings")
    op.drop_index(op.f("ix_experiment_looks_workspace_id"), table_name="experiment_looks")
    op.drop_table("experiment_looks")
    op.drop_index(
        op.f("ix_experiment_declarations_workspace_id"), table_name="experiment_declarations"
    )
    op.drop_table("experiment_declarations")
