"""Benchmarks for the budgets of DESIGN.md §7 (issue 7): `python -m benchmarks [--quick]`.

One module per measurement (ack, reminders, postmortem, restart); `common` holds
the shared pieces: the timestamping fake Slack, subprocess handling, seeding and
the result rows. Budgets are checked here, never in timed unit tests.
"""
