"""Durable work: the outbox relay, the worker that consumes durable events exactly once in
effect, and the scheduled jobs (`chargenet worker`; also inside `chargenet serve`)."""
