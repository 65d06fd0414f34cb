"""What every agentledger process shares: NATS connections, the embedded nats-server, logging,
the event loop, telemetry and atomic file writes."""
