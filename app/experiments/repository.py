"""Every query of the experiments domain, scoped by workspace (the cron's scan of due
settings is the one read across workspaces, and hands each row on to scoped work)."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, case, exists, func, literal, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.channels.models import Message
from app.core.repository import WorkspaceRepository
from app.experiments.models import ExperimentDeclaration, ExperimentLook, ExperimentSetting
from app.metrics.conversions_repository import conversions_query


@dataclass(frozen=True)
class VariantCounts:
    """Unique contacts per variant of one send step: exposed (a message sent), and of
    those, opened, clicked, replied, converted."""

    sent: int = 0
    opened: int = 0
    clicked: int = 0
    replied: int = 0
    converted: int = 0


@dataclass(frozen=True)
class Look:
    p_value: float
    interval_low: float | None
    interval_high: float | None
    looks: int


class DeclarationRepository(WorkspaceRepository[ExperimentDeclaration]):
    model = ExperimentDeclaration
    noun = "declaration"

    async def of_campaign(self, campaign_id: uuid.UUID) -> list[ExperimentDeclaration]:
        statement = self.scoped().where(ExperimentDeclaration.campaign_id == campaign_id)
        return list((await self.session.execute(statement)).scalars())

    async def insert(self, values: dict[str, object]) -> ExperimentDeclaration | None:
        """Insert unless the step already has a winner (None then): concurrent declarations
        of one step resolve to one row."""
        statement = (
            insert(ExperimentDeclaration)
            .values(workspace_id=self.workspace_id, **values)
            .on_conflict_do_nothing(constraint="uq_experiment_declarations_step")
            .returning(ExperimentDeclaration)
        )
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def applied(
        self, campaign_ids: Collection[uuid.UUID]
    ) -> dict[tuple[uuid.UUID, str], str]:
        """(campaign, step) -> winner, for declarations that route the remaining contacts
        (one index probe per campaign on the unique constraint)."""
        statement = select(
            ExperimentDeclaration.campaign_id,
            ExperimentDeclaration.step_key,
            ExperimentDeclaration.variant,
        ).where(
            ExperimentDeclaration.workspace_id == self.workspace_id,
            ExperimentDeclaration.campaign_id.in_(list(campaign_ids)),
            ExperimentDeclaration.apply_to_remaining,
        )
        rows = await self.session.execute(statement)
        return {(row.campaign_id, row.step_key): row.variant for row in rows}


class SettingRepository(WorkspaceRepository[ExperimentSetting]):
    model = ExperimentSetting
    noun = "experiment setting"

    async def of_campaign(self, campaign_id: uuid.UUID) -> list[ExperimentSetting]:
        statement = self.scoped().where(ExperimentSetting.campaign_id == campaign_id)
        return list((await self.session.execute(statement)).scalars())

    async def upsert(
        self, campaign_id: uuid.UUID, step_key: str, values: dict[str, object]
    ) -> ExperimentSetting:
        statement = (
            insert(ExperimentSetting)
            .values(
                workspace_id=self.workspace_id,
                campaign_id=campaign_id,
                step_key=step_key,
                **values,
            )
            .on_conflict_do_update(
                constraint="uq_experiment_settings_step",
                set_={
                    key: value for key, value in values.items() if key not in ("id", "created_at")
                },
            )
            .returning(ExperimentSetting)
            .execution_options(populate_existing=True)
        )
        return (await self.session.execute(statement)).scalar_one()


async def due_settings(
    session: AsyncSession, after: uuid.UUID | None, limit: int
) -> list[tuple[uuid.UUID, uuid.UUID, uuid.UUID, str]]:
    """(id, workspace, campaign, step) of automatic settings whose step has no winner yet,
    across workspaces (the cron's scan), by id after `after`."""
    declared = exists().where(
        ExperimentDeclaration.campaign_id == ExperimentSetting.campaign_id,
        ExperimentDeclaration.step_key == ExperimentSetting.step_key,
    )
    statement = (
        select(
            ExperimentSetting.id,
            ExperimentSetting.workspace_id,
            ExperimentSetting.campaign_id,
            ExperimentSetting.step_key,
        )
        .where(ExperimentSetting.auto_declare, ~declared)
        .order_by(ExperimentSetting.id)
        .limit(limit)
    )
    if after is not None:
        statement = statement.where(ExperimentSetting.id > after)
    rows = await session.execute(statement)
    return [(row.id, row.workspace_id, row.campaign_id, row.step_key) for row in rows]


class ExperimentRepository(WorkspaceRepository[ExperimentLook]):
    model = ExperimentLook
    noun = "experiment"

    async def variant_counts(
        self,
        campaign_id: uuid.UUID,
        step_key: str,
        *,
        before: datetime | None,
        with_conversions: bool,
    ) -> dict[str | None, VariantCounts]:
        """Unique contacts per variant among the step's sent messages (`sent_at` set),
        created before `before` when given (the randomised part of an experiment whose
        winner now routes everyone). A contact converted when a conversion of the campaign
        (app.metrics.conversions_repository) occurred at or after its message of this step
        was sent."""
        conditions = [
            Message.workspace_id == self.workspace_id,
            Message.campaign_id == campaign_id,
            Message.step_key == step_key,
            Message.sent_at.is_not(None),
        ]
        if before is not None:
            conditions.append(Message.created_at < before)
        columns = [
            Message.variant,
            Message.contact_id,
            Message.first_opened_at.is_not(None).label("opened"),
            Message.first_clicked_at.is_not(None).label("clicked"),
            Message.replied_at.is_not(None).label("replied"),
        ]
        if with_conversions:
            # The latest conversion per contact, computed once and hash-joined: "a conversion
            # at or after the send" is "the latest conversion is at or after the send".
            conversions = conversions_query(
                workspace_id=self.workspace_id, campaign_ids=[campaign_id]
            ).subquery("conversions")
            latest = (
                select(
                    conversions.c.contact_id,
                    func.max(conversions.c.occurred_at).label("occurred_at"),
                )
                .group_by(conversions.c.contact_id)
                .subquery("latest")
            )
            converted = func.coalesce(latest.c.occurred_at >= Message.sent_at, False)
            joined = select(*columns, converted.label("converted")).outerjoin(
                latest, latest.c.contact_id == Message.contact_id
            )
        else:
            joined = select(*columns, literal(False).label("converted"))
        exposures = joined.where(*conditions).subquery("exposures")
        contact = exposures.c.contact_id

        def unique(flag: ColumnElement[bool]) -> ColumnElement[int]:
            return func.count(func.distinct(contact)).filter(flag)

        statement = select(
            exposures.c.variant,
            func.count(func.distinct(contact)).label("sent"),
            unique(exposures.c.opened).label("opened"),
            unique(exposures.c.clicked).label("clicked"),
            unique(exposures.c.replied).label("replied"),
            unique(exposures.c.converted).label("converted"),
        ).group_by(exposures.c.variant)
        rows = await self.session.execute(statement)
        return {
            row.variant: VariantCounts(
                int(row.sent),
                int(row.opened),
                int(row.clicked),
                int(row.replied),
                int(row.converted),
            )
            for row in rows
        }

    async def record_look(
        self,
        campaign_id: uuid.UUID,
        *,
        step_key: str,
        metric: str,
        variant: str,
        p_value: float,
        interval: tuple[float, float] | None,
        now: datetime,
    ) -> Look:
        """Fold one look into the running state: the minimum p-value, the intersection of
        the intervals (an empty intersection keeps the new interval). Concurrent looks
        serialise on the row."""
        low, high = interval if interval is not None else (None, None)
        table = ExperimentLook.__table__
        statement = insert(ExperimentLook).values(
            workspace_id=self.workspace_id,
            campaign_id=campaign_id,
            step_key=step_key,
            metric=metric,
            variant=variant,
            p_value=p_value,
            interval_low=low,
            interval_high=high,
            looks=1,
            updated_at=now,
        )
        new = statement.excluded
        old_low, old_high = table.c.interval_low, table.c.interval_high
        merged_low = func.greatest(old_low, new.interval_low)
        merged_high = func.least(old_high, new.interval_high)
        empty = and_(old_low.is_not(None), new.interval_low.is_not(None), merged_low > merged_high)
        upsert = statement.on_conflict_do_update(
            constraint="uq_experiment_looks_arm",
            set_={
                "p_value": func.least(table.c.p_value, new.p_value),
                "interval_low": case((empty, new.interval_low), else_=merged_low),
                "interval_high": case((empty, new.interval_high), else_=merged_high),
                "looks": table.c.looks + 1,
                "updated_at": new.updated_at,
            },
        ).returning(table.c.p_value, table.c.interval_low, table.c.interval_high, table.c.looks)
        row = (await self.session.execute(upsert)).one()
        return Look(float(row.p_value), row.interval_low, row.interval_high, int(row.looks))
