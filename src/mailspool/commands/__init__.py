"""Command groups of the ``mailspool`` CLI that live apart from ``mailspool.cli``."""
