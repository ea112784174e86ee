"""Every model, imported once so `Base.metadata` is complete (Alembic, drift test)."""

from app.approvals.models import ApprovalDecision, ApprovalPolicy, ApprovalRequest
from app.audit.models import AuditEvent
from app.campaigns.models import Campaign, CampaignAction, SpendEntry
from app.channels.models import Message
from app.contacts.models import (
    ConsentChange,
    Contact,
    ContactConsent,
    ContactImport,
    ContactImportChunk,
    ContactImportError,
    Suppression,
)
from app.core.db import Base
from app.core.idempotency import IdempotencyRecord
from app.events.models import Event
from app.experiments.models import ExperimentDeclaration, ExperimentLook, ExperimentSetting
from app.metrics.models import MetricDelta, MetricEventFact, MetricPendingEvent, MetricRollup
from app.outbox.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookEvent
from app.segments.models import (
    Segment,
    SegmentCountSnapshot,
    SegmentDirtyContact,
    SegmentMembership,
    SegmentMembershipChange,
)
from app.sequences.models import Enrollment, EnrollmentStep, Sequence, SequenceVersion
from app.templates.models import Template, TemplateVersion
from app.workspaces.models import ApiKey, Member, Workspace

__all__ = [
    "ApiKey",
    "ApprovalDecision",
    "ApprovalPolicy",
    "ApprovalRequest",
    "AuditEvent",
    "Base",
    "Campaign",
    "CampaignAction",
    "ConsentChange",
    "Contact",
    "ContactConsent",
    "ContactImport",
    "ContactImportChunk",
    "ContactImportError",
    "Enrollment",
    "EnrollmentStep",
    "Event",
    "ExperimentDeclaration",
    "ExperimentLook",
    "ExperimentSetting",
    "IdempotencyRecord",
    "Member",
    "Message",
    "MetricDelta",
    "MetricEventFact",
    "MetricPendingEvent",
    "MetricRollup",
    "Segment",
    "SegmentCountSnapshot",
    "SegmentDirtyContact",
    "SegmentMembership",
    "SegmentMembershipChange",
    "Sequence",
    "SequenceVersion",
    "SpendEntry",
    "Suppression",
    "Template",
    "TemplateVersion",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEndpoint",
    "WebhookEvent",
    "Workspace",
]
