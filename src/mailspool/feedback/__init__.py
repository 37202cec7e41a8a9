"""After the hand-off: what became of the mail, and acting on it.

```
layout.py        every feedback key of the store, drawn in one place
suppression.py   the suppression list: one small object per address, cached
screen.py        suppressed recipients taken off an e-mail before it is sent
events.py        SES events (both formats, every wrapper) -> typed FeedbackEvent
ingest.py        apply events: suppression, soft-bounce threshold, history, hooks
hooks.py         Python callbacks for every event (Django signals build on them)
cli.py           mailspool suppression
```
"""
