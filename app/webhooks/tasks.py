"""arq tasks of the webhooks domain (registered in app/worker/settings.py)."""

from __future__ import annotations

from typing import Any

from arq.cron import CronJob

TASKS: list[Any] = []
CRON_JOBS: list[CronJob] = []
