"""After the hand-off: what became of the mail, and acting on it.

```
layout.py        every feedback key of the store, drawn in one place
suppression.py   the suppression list: one small object per address, cached
screen.py        suppressed recipients taken off an e-mail before it is sent
events.py        SES events (both formats, every wrapper) -> typed FeedbackEvent
ingest.py        apply events: suppression, soft-bounce threshold, history, hooks
hooks.py         Python callbacks for every event (Django signals build on them)
route.py         the SES events of a Lambda invocation or of JSON lines
trace.py         each e-mail's history, joined through the provider id in the ledger
sns.py           SNS message signature verification and subscription confirmation
http.py          POST /events/ses as a plain function (method, headers, body) -> Response
unsubscribe.py   RFC 8058 one-click unsubscribe: signed per-recipient tokens, headers
endpoints.py     both endpoints routed by path, and as an ASGI app
settings.py      the feedback parts built from mailspool.config.Settings
rates.py         bounce and complaint rates over the last sends; the worker's guard
ses_sync.py      two-way sync with SES's account-level suppression list
```

Its commands (``mailspool suppression | trace | events``) are in ``mailspool.cli``.
"""
