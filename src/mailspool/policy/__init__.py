"""May this e-mail go, and as what: every decision made before an e-mail leaves, for the
request path and the worker alike.

```
limits.py           what an e-mail and a batch file may hold, each limit a setting
guards.py           an e-mail read from the store through the limits, the attachment
                    root and the allowed senders (the worker's reading of a batch)
attachment_root.py  a version-0 path attachment, only from beneath MAILSPOOL_ATTACHMENT_ROOT
allowed_senders.py  MAILSPOOL_ALLOWED_SENDERS: the From and Sender an e-mail may carry
screen.py           suppressed recipients taken off before a send
```
What happens after the hand-off (events, the suppression list as it is fed, SNS, the
endpoints) is ``feedback``'s.
"""
