"""Where higher domains subscribe to what lower ones publish, once per process.

The domain graph is one-way (docs/architecture.md): a lower domain never imports a higher
one. When it must tell them something, it publishes a notice (`app/core/notices.py`) or
calls a registry it owns; this module, a composition root like `app/main.py` and
`app/worker/settings.py` (both call `wire()`), is the one place those subscriptions are
made, so the whole graph of notices reads top to bottom here.
"""

from __future__ import annotations

from app.approvals.desk import ApprovalsDesk
from app.campaigns import usage as campaigns_usage
from app.campaigns.merge_fields import load_merge_fields
from app.campaigns.reviews import register_review_desk
from app.channels.notices import contacts_stopped, messages_settled
from app.channels.signing_secrets import register_signing_secret_source
from app.contacts.notices import contact_leaving, contacts_changed
from app.contacts.privacy.sections import register_erasure_step, register_export_section
from app.core.principals import register_key_lookup
from app.events import privacy as events_privacy
from app.events.notices import events_recorded
from app.experiments.service import applied_winners
from app.segments import membership
from app.segments import privacy as segments_privacy
from app.segments import service as segments_service
from app.sequences import privacy as sequences_privacy
from app.sequences import service as sequences
from app.sequences import usage as sequences_usage
from app.sequences.engine import exits, wake
from app.sequences.engine.variants import register_winner_source
from app.templates.merge_fields import register_campaign_fields
from app.workspaces.service import authenticate


def wire() -> None:
    """Idempotent: every registry ignores a second registration of the same subscriber."""
    # Core authenticates bearer keys through the workspaces domain's lookup.
    register_key_lookup(authenticate)
    # Segments keep memberships current as contacts and their events change.
    contacts_changed.subscribe(membership.note_contacts_changed)
    contact_leaving.subscribe(membership.end_memberships)
    events_recorded.subscribe(membership.on_events_recorded)
    # The engine wakes enrollments waiting for (or exiting on) new events.
    events_recorded.subscribe(wake.on_events_recorded)
    # ... and moves enrollments past send steps whose messages settled, and ends those of
    # contacts who unsubscribed, bounced or complained.
    messages_settled.subscribe(wake.wake_settled)
    contacts_stopped.subscribe(exits.exit_enrollments)
    # Delivery signs webhook steps' calls with their sequence's current secret.
    register_signing_secret_source(sequences.signing_secrets)
    # Declared experiment winners route the remaining contacts of a send step.
    register_winner_source(applied_winners)
    # Campaigns ask the approvals domain to open and void review rounds.
    register_review_desk(ApprovalsDesk())
    # Templates render campaign.* merge fields through the campaigns' loader.
    register_campaign_fields(load_merge_fields)
    # What uses a sequence, segment, template or approval policy (409 in-use, GET .../usage).
    campaigns_usage.register()
    sequences_usage.register()
    segments_service.register_usage()
    # Each domain's part of a privacy export and erasure.
    register_export_section("events", events_privacy.export_section)
    register_export_section("segments", segments_privacy.export_section)
    register_erasure_step("events", events_privacy.erase)
    register_erasure_step("segments", segments_privacy.erase)
    sequences_privacy.register()
