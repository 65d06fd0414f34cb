"""The aiohttp gateway: HTTP API over the event log and the projector's queries."""
