"""Processes of agentledger: gateway, projector host, CLI, the `up` supervisor and settings."""
