"""Metrics test data: rows written straight to the tables (as the engine, delivery, tracking
and ingestion write them), so every capture path is the database's own."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.campaigns.models import Campaign
from app.channels.models import Message
from app.config import MetricsSettings, Settings
from app.contacts.models import Contact
from app.core.clock import utcnow
from app.core.db import transaction
from app.events.models import Event
from app.metrics import service
from app.metrics.repository import Scope
from app.segments.models import Segment, SegmentMembership
from app.sequences.models import Enrollment, Sequence, SequenceVersion
from tests.fixtures.tenants import Tenant

Factory = async_sessionmaker[AsyncSession]
NO_SETTLE = MetricsSettings(settle_seconds=0)
UNSET = uuid.UUID(int=0)


@dataclass
class World:
    factory: Factory
    tenant: Tenant
    timezone: str = "UTC"
    goal: dict[str, Any] | None = field(
        default_factory=lambda: {"event_type": "purchase", "window": "P7D"}
    )
    campaign_id: uuid.UUID = UNSET
    sequence_id: uuid.UUID = UNSET
    version_id: uuid.UUID = UNSET
    segment_ids: list[uuid.UUID] = field(default_factory=list)

    @property
    def workspace_id(self) -> uuid.UUID:
        return self.tenant.workspace_id

    async def setup(self, segments: int = 0) -> World:
        async with transaction(self.factory) as session:
            sequence = Sequence(
                workspace_id=self.workspace_id,
                name="Flow",
                version=1,
                definition={"steps": []},
                published_version=1,
                signing_secret="s" * 32,
            )
            session.add(sequence)
            await session.flush()
            version = SequenceVersion(
                workspace_id=self.workspace_id,
                sequence_id=sequence.id,
                number=1,
                definition={"steps": []},
                published_at=utcnow(),
            )
            session.add(version)
            for i in range(segments):
                segment = Segment(
                    workspace_id=self.workspace_id,
                    name=f"S{i}",
                    kind="static",
                )
                session.add(segment)
                await session.flush()
                self.segment_ids.append(segment.id)
            campaign = Campaign(
                workspace_id=self.workspace_id,
                name="Winter sale",
                type="one_off",
                status="running",
                goal=self.goal,
                timezone=self.timezone,
                channels=["email"],
                include_segments=[str(s) for s in self.segment_ids],
                exclude_segments=[],
                kpis=[],
                reentry={},
                tags=[],
                sequence_id=sequence.id,
            )
            session.add(campaign)
            await session.flush()
            self.campaign_id, self.sequence_id = campaign.id, sequence.id
            self.version_id = version.id
        return self

    async def contact(self, segment: int | None = None) -> uuid.UUID:
        async with transaction(self.factory) as session:
            contact = Contact(
                workspace_id=self.workspace_id, email=f"{uuid.uuid4().hex[:10]}@acme.example"
            )
            session.add(contact)
            await session.flush()
            if segment is not None:
                session.add(
                    SegmentMembership(
                        workspace_id=self.workspace_id,
                        segment_id=self.segment_ids[segment],
                        contact_id=contact.id,
                        entered_at=utcnow(),
                    )
                )
            return contact.id

    async def enroll(self, contact_id: uuid.UUID, at: datetime) -> uuid.UUID:
        async with transaction(self.factory) as session:
            enrollment = Enrollment(
                workspace_id=self.workspace_id,
                sequence_id=self.sequence_id,
                sequence_version_id=self.version_id,
                contact_id=contact_id,
                campaign_id=self.campaign_id,
                source="campaign",
                state="active",
                step_key="hello",
                step_visit=1,
                step_entered_at=at,
                started_at=at,
                updated_at=at,
            )
            session.add(enrollment)
            await session.flush()
            return enrollment.id

    async def set_enrollment(self, enrollment_id: uuid.UUID, **values: Any) -> None:
        async with transaction(self.factory) as session:
            await session.execute(
                update(Enrollment).where(Enrollment.id == enrollment_id).values(**values)
            )

    async def message(
        self,
        enrollment_id: uuid.UUID,
        contact_id: uuid.UUID,
        at: datetime,
        *,
        step_key: str = "hello",
        variant: str | None = None,
        channel: str = "email",
        visit: int = 1,
    ) -> uuid.UUID:
        async with transaction(self.factory) as session:
            message = Message(
                workspace_id=self.workspace_id,
                enrollment_id=enrollment_id,
                contact_id=contact_id,
                sequence_id=self.sequence_id,
                campaign_id=self.campaign_id,
                step_key=step_key,
                visit=visit,
                channel=channel,
                variant=variant,
                recipient="x@acme.example",
                content={},
                status="queued",
                attempts=0,
                due_at=at,
                created_at=at,
                updated_at=at,
            )
            session.add(message)
            await session.flush()
            return message.id

    async def set_message(self, message_id: uuid.UUID, **values: Any) -> None:
        async with transaction(self.factory) as session:
            await session.execute(update(Message).where(Message.id == message_id).values(**values))

    async def event(
        self,
        contact_id: uuid.UUID,
        type_: str,
        at: datetime,
        *,
        revenue: str | None = None,
        received_at: datetime | None = None,
        **properties: Any,
    ) -> uuid.UUID:
        async with transaction(self.factory) as session:
            event = Event(
                workspace_id=self.workspace_id,
                contact_id=contact_id,
                type=type_,
                properties={k: str(v) for k, v in properties.items()},
                revenue=None if revenue is None else Decimal(revenue),
                occurred_at=at,
                received_at=received_at or utcnow(),
            )
            session.add(event)
            await session.flush()
            return event.id

    async def fold(self, config: MetricsSettings = NO_SETTLE) -> service.FoldResult:
        async with transaction(self.factory) as session:
            return await service.fold(session, config, utcnow())

    async def stats(self, group_by: Any = None) -> Any:
        async with self.factory() as session:
            return await service.campaign_stats(
                session, self.workspace_id, self.campaign_id, group_by
            )

    async def recount(self, fix: bool = False) -> list[service.Difference]:
        async with transaction(self.factory) as session:
            return await service.recount(
                session, Scope(self.workspace_id, self.campaign_id), fix=fix
            )


def settings_with(settings: Settings, config: MetricsSettings) -> Settings:
    return settings.model_copy(update={"metrics": config})
