"""After the hand-off: what became of the mail, and acting on it.

```
layout.py        every feedback key of the store, drawn in one place
suppression.py   the suppression list: one small object per address, cached
screen.py        suppressed recipients taken off an e-mail before it is sent
cli.py           mailspool suppression
```
"""
