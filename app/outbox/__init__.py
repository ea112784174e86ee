"""The event outbox: the one place every domain publishes what happened.

A domain describes a change with a payload model from `catalogue` and writes it with
`emit.emit` / `emit_many` / `emit_lazy` / `emit_from_query` in the transaction of the change
(a rolled-back change publishes nothing). The rows (`models`: events, one delivery per
subscribed endpoint, the log of attempts) are worked by the webhooks domain's dispatcher,
which sits above every publisher; the outbox itself imports nothing but core.
"""
