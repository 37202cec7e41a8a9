"""What starts the worker: a local loop (``local``) or AWS events (``mailspool.aws``)."""
