"""A campaign's life after approval: scheduling, launch, pause/resume/cancel, the durable
actions that run them on time (`actions`), and the trigger sweep of triggered campaigns.

Every status change goes through `app.campaigns.transitions.apply` (the one writer of
`campaigns.status`); every query of this package is in `repository.py`; what launch needs
from other domains (reachable contacts, segment members and entries, events, enrollments)
it asks their services for, as unexecuted SELECTs composed into one INSERT ... SELECT.
"""
