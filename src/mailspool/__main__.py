"""``python -m mailspool``: the same as the ``mailspool`` command."""

from mailspool.cli import main

main()
