"""The scheduler service: syncs schedules from a calendar backend (full, then diffs with the sync
token), wakes idle agents whose slots are due, records every outcome, forwards agents' status
reports and sends the claw's liveness heartbeat."""
