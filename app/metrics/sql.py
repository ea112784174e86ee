"""SQL shared by the capture triggers (migration 0010_metrics holds a frozen copy), the
recount and the segment breakdown: how a row of `messages`, `enrollments` or
`metric_event_facts` turns into metric rows.

An *unpivot* maps a source `r` (any rows of the table plus a `sign` column: +1 for a row
that now exists, -1 for a row that no longer does) to rows of
(workspace_id, campaign_id, sequence_id, step_key, variant, channel, contact_id, bucket,
metric, amount). A metric is counted in the UTC hour of its own timestamp:

| metric | from | bucket |
|---|---|---|
| enrolled | enrollments | started_at |
| completed / exited | enrollments in that state | finished_at (else started_at) |
| unsubscribed | exited with reason `unsubscribed` | finished_at (else started_at) |
| sent, delivered, bounced, failed | messages.*_at set | that timestamp |
| unknown | messages in status `unknown` | created_at |
| opened, clicked, replied (unique) | first_opened_at, first_clicked_at, replied_at | same |
| opens, clicks, replies (total) | facts of email.opened/clicked/replied events | occurred_at |
| converted, revenue | conversion facts | the goal event's occurred_at |

Because an UPDATE contributes -1 for the old row and +1 for the new one, any change of
any input (a timestamp, the status, even the variant) lands in the right place exactly.
"""

from __future__ import annotations

from collections.abc import Callable

from app.metrics.models import COUNTERS, KEY_COLUMNS

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
        [*(f"u.{c}" for c in group), *(f"{s} AS {m}" for s, m in zip(sums, METRICS, strict=True))]
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


CAPTURES = (
    ("metrics_capture_messages", message_unpivot, "messages"),
    ("metrics_capture_enrollments", enrollment_unpivot, "enrollments"),
    ("metrics_capture_facts", fact_unpivot, "metric_event_facts"),
)
