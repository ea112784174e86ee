"""Owner notifications: an email through the configured provider, plus an audit row, when
something the workspace relies on stops working (a webhook endpoint disabled, a campaign whose
sends keep failing). Top of the domain graph: it reads webhooks', campaigns' and channels'
tables and sends through channels' providers; nothing imports it but the worker."""
