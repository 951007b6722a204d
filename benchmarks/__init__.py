"""Benchmarks for the performance budgets listed in benchmarks/README.md (issue 7):
`python -m benchmarks [--quick] [--write]`.

One module per measurement (ack, reminders, postmortem, restart); `common` holds
the shared pieces: the timestamping fake Slack, subprocess handling, seeding and
the result rows. Budgets are checked here, never in timed unit tests.
"""
