"""Metrics: append-only deltas written by statement-level triggers on messages, enrollments and
event facts; rollups folded from them; the queue of events to examine (trigger on events).

The SQL generators below are a frozen copy of app/metrics/sql.py at this revision.

Revision ID: 0010_metrics
Revises: 0009_webhooks
Create Date: 2026-11-23 03:00:00+00:00
"""

from collections.abc import Callable, Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_metrics"
down_revision: str | None = "0009_webhooks"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COUNTERS = (
    "enrolled",
    "completed",
    "exited",
    "unsubscribed",
    "sent",
    "delivered",
    "bounced",
    "failed",
    "unknown",
    "opened",
    "clicked",
    "replied",
    "opens",
    "clicks",
    "replies",
    "converted",
)
KEY_COLUMNS = (
    "workspace_id",
    "campaign_id",
    "sequence_id",
    "step_key",
    "variant",
    "channel",
)
METRICS = (*COUNTERS, "revenue")
ROW_COLUMNS = (*KEY_COLUMNS, "contact_id", "bucket", "metric", "amount")


def _hour(expression: str) -> str:
    return f"date_trunc('hour', {expression}, 'UTC')"


def message_unpivot(source: str) -> str:
    stamps = [
        ("sent_at", "sent"),
        ("delivered_at", "delivered"),
        ("bounced_at", "bounced"),
        ("failed_at", "failed"),
        ("first_opened_at", "opened"),
        ("first_clicked_at", "clicked"),
        ("replied_at", "replied"),
    ]
    values = [f"({_hour('r.' + column)}, '{metric}', 1::numeric)" for column, metric in stamps]
    values.append(
        f"(CASE WHEN r.status = 'unknown' THEN {_hour('r.created_at')} END, 'unknown', 1)"
    )
    return (
        "SELECT r.workspace_id, r.campaign_id, r.sequence_id, r.step_key,"
        " coalesce(r.variant, '') AS variant, r.channel, r.contact_id, v.bucket, v.metric,"
        " r.sign * v.amount AS amount"
        f" FROM ({source}) r CROSS JOIN LATERAL (VALUES {', '.join(values)})"
        " AS v(bucket, metric, amount)"
        " WHERE r.campaign_id IS NOT NULL AND v.bucket IS NOT NULL"
    )


def enrollment_unpivot(source: str) -> str:
    ended = _hour("coalesce(r.finished_at, r.started_at)")
    values = [
        f"({_hour('r.started_at')}, 'enrolled', 1::numeric)",
        f"(CASE WHEN r.state = 'completed' THEN {ended} END, 'completed', 1)",
        f"(CASE WHEN r.state = 'exited' THEN {ended} END, 'exited', 1)",
        "(CASE WHEN r.state = 'exited' AND r.exit_reason = 'unsubscribed'"
        f" THEN {ended} END, 'unsubscribed', 1)",
    ]
    return (
        "SELECT r.workspace_id, r.campaign_id, r.sequence_id, ''::varchar AS step_key,"
        " ''::varchar AS variant, ''::varchar AS channel, r.contact_id, v.bucket, v.metric,"
        " r.sign * v.amount AS amount"
        f" FROM ({source}) r CROSS JOIN LATERAL (VALUES {', '.join(values)})"
        " AS v(bucket, metric, amount)"
        " WHERE r.campaign_id IS NOT NULL AND v.bucket IS NOT NULL"
    )


def fact_unpivot(source: str) -> str:
    values = [
        "(CASE r.kind WHEN 'open' THEN 'opens' WHEN 'click' THEN 'clicks'"
        " WHEN 'reply' THEN 'replies' ELSE 'converted' END, 1::numeric)",
        "(CASE WHEN r.kind = 'conversion' AND r.revenue IS NOT NULL THEN 'revenue' END, r.revenue)",
    ]
    return (
        "SELECT r.workspace_id, r.campaign_id, r.sequence_id, r.step_key, r.variant,"
        " r.channel, r.contact_id, r.bucket, v.metric, r.sign * v.amount AS amount"
        f" FROM ({source}) r CROSS JOIN LATERAL (VALUES {', '.join(values)})"
        " AS v(metric, amount) WHERE v.metric IS NOT NULL"
    )


def aggregate(rows: str, group: tuple[str, ...], *, having_change: bool = False) -> str:
    """Sum metric rows into one column per metric, grouped by `group` columns of `rows`."""
    sums = [f"coalesce(sum(u.amount) FILTER (WHERE u.metric = '{m}'), 0)" for m in METRICS]
    select = ", ".join(
        [
            *(f"u.{c}" for c in group),
            *(f"{s} AS {m}" for s, m in zip(sums, METRICS, strict=True)),
        ]
    )
    sql = f"SELECT {select} FROM ({rows}) u"
    if group:
        sql += " GROUP BY " + ", ".join(f"u.{c}" for c in group)
    if having_change:
        sql += " HAVING " + " OR ".join(f"{s} <> 0" for s in sums)
    return sql


DELTA_GROUP = (*KEY_COLUMNS, "bucket")


def capture_function(name: str, unpivot: Callable[[str], str], table: str) -> str:
    """The statement-level trigger function appending the net change of a statement."""
    insert = f"INSERT INTO metric_deltas ({', '.join((*DELTA_GROUP, *METRICS))}) "

    def body(source: str) -> str:
        return insert + aggregate(unpivot(source), DELTA_GROUP, having_change=True) + ";"

    new = "SELECT 1 AS sign, n.* FROM new_rows n"
    old = "SELECT -1 AS sign, o.* FROM old_rows o"
    return (
        f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$\n"
        f"-- Net metric change of one statement on {table} (see app/metrics/sql.py).\n"
        "BEGIN\n"
        "  IF TG_OP = 'INSERT' THEN\n"
        f"    {body(new)}\n"
        "  ELSIF TG_OP = 'DELETE' THEN\n"
        f"    {body(old)}\n"
        "  ELSE\n"
        f"    {body(new + ' UNION ALL ' + old)}\n"
        "  END IF;\n"
        "  RETURN NULL;\n"
        "END $$"
    )


# Delta and queue rows live about a second: vacuum after a few thousand dead ones.
AUTOVACUUM = {"autovacuum_vacuum_scale_factor": "0", "autovacuum_vacuum_threshold": "5000"}

PENDING_FUNCTION = """
CREATE FUNCTION metrics_queue_events() RETURNS trigger LANGUAGE plpgsql AS $$
-- Events that may count for metrics: tracking events and goal events of some campaign.
BEGIN
  INSERT INTO metric_pending_events (event_id, workspace_id, received_at)
  SELECT n.id, n.workspace_id, n.received_at FROM new_rows n
  WHERE n.type IN ('email.opened', 'email.clicked', 'email.replied')
     OR EXISTS (
       SELECT 1 FROM campaigns c
       WHERE c.workspace_id = n.workspace_id AND c.goal ->> 'event_type' = n.type
     )
  ON CONFLICT DO NOTHING;
  RETURN NULL;
END $$
"""

CAPTURES = (
    ("metrics_capture_messages", message_unpivot, "messages"),
    ("metrics_capture_enrollments", enrollment_unpivot, "enrollments"),
    ("metrics_capture_facts", fact_unpivot, "metric_event_facts"),
)


def _triggers(function: str, table: str) -> list[str]:
    return [
        f"CREATE TRIGGER {function}_insert AFTER INSERT ON {table}"
        f" REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION {function}()",
        f"CREATE TRIGGER {function}_update AFTER UPDATE ON {table}"
        " REFERENCING NEW TABLE AS new_rows OLD TABLE AS old_rows"
        f" FOR EACH STATEMENT EXECUTE FUNCTION {function}()",
        f"CREATE TRIGGER {function}_delete AFTER DELETE ON {table}"
        f" REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION {function}()",
    ]


def upgrade() -> None:
    op.create_table(
        "metric_deltas",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.Column("campaign_id", sa.Uuid(), nullable=False),
        sa.Column("sequence_id", sa.Uuid(), nullable=False),
        sa.Column("step_key", sa.String(length=100), nullable=False),
        sa.Column("variant", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("bucket", sa.DateTime(timezone=True), nullable=False),
        sa.Column("enrolled", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("completed", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("exited", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("unsubscribed", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("sent", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("delivered", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("bounced", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("failed", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("unknown", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("opened", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("clicked", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("replied", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("opens", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("clicks", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("replies", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("converted", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column(
            "revenue",
            sa.Numeric(precision=18, scale=4),
            server_default=sa.text("0"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_metric_deltas")),
        postgresql_with=AUTOVACUUM,
    )
    op.create_table(
        "metric_pending_events",
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_metric_pending_events")),
        postgresql_with=AUTOVACUUM,
    )
    op.create_index("ix_metric_pending_events_workspace", "metric_pending_events", ["workspace_id"])
    op.create_index("ix_metric_pending_events_received", "metric_pending_events", ["received_at"])
    op.create_table(
        "metric_rollups",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.Column("campaign_id", sa.Uuid(), nullable=False),
        sa.Column("sequence_id", sa.Uuid(), nullable=False),
        sa.Column("step_key", sa.String(length=100), nullable=False),
        sa.Column("variant", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("bucket", sa.DateTime(timezone=True), nullable=False),
        sa.Column("enrolled", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("completed", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("exited", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("unsubscribed", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("sent", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("delivered", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("bounced", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("failed", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("unknown", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("opened", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("clicked", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("replied", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("opens", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("clicks", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("replies", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("converted", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column(
            "revenue",
            sa.Numeric(precision=18, scale=4),
            server_default=sa.text("0"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_metric_rollups")),
    )
    op.create_index(
        "uq_metric_rollups_key",
        "metric_rollups",
        [
            "workspace_id",
            "campaign_id",
            "sequence_id",
            "step_key",
            "variant",
            "channel",
            "bucket",
        ],
        unique=True,
    )
    op.create_table(
        "metric_event_facts",
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("campaign_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.Column("contact_id", sa.Uuid(), nullable=False),
        sa.Column("message_id", sa.Uuid(), nullable=False),
        sa.Column("sequence_id", sa.Uuid(), nullable=False),
        sa.Column("step_key", sa.String(length=100), nullable=False),
        sa.Column("variant", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("bucket", sa.DateTime(timezone=True), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revenue", sa.Numeric(precision=18, scale=4), nullable=True),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["events.id"],
            name=op.f("fk_metric_event_facts_event_id_events"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "event_id", "campaign_id", "kind", name=op.f("pk_metric_event_facts")
        ),
    )
    op.create_index(
        "ix_metric_event_facts_campaign",
        "metric_event_facts",
        ["campaign_id", "kind"],
        unique=False,
    )

    for function, unpivot, table in CAPTURES:
        op.execute(capture_function(function, unpivot, table))
        for statement in _triggers(function, table):
            op.execute(statement)
    op.execute(PENDING_FUNCTION)
    op.execute(
        "CREATE TRIGGER metrics_queue_events_insert AFTER INSERT ON events"
        " REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT"
        " EXECUTE FUNCTION metrics_queue_events()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER metrics_queue_events_insert ON events")
    op.execute("DROP FUNCTION metrics_queue_events()")
    for function, _unpivot, table in CAPTURES:
        for event in ("insert", "update", "delete"):
            op.execute(f"DROP TRIGGER {function}_{event} ON {table}")
        op.execute(f"DROP FUNCTION {function}()")
    op.drop_index("ix_metric_event_facts_campaign", table_name="metric_event_facts")
    op.drop_table("metric_event_facts")
    op.drop_index("uq_metric_rollups_key", table_name="metric_rollups")
    op.drop_table("metric_rollups")
    op.drop_index("ix_metric_pending_events_received", table_name="metric_pending_events")
    op.drop_index("ix_metric_pending_events_workspace", table_name="metric_pending_events")
    op.drop_table("metric_pending_events")
    op.drop_table("metric_deltas")
