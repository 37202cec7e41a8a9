"""Delivery: the worker that sends a claimed batch, and the shared rate limit."""
