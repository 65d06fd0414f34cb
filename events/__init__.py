"""The event language of agentledger: types, subjects, streams, codec, deciders and the SDK.

Nothing here imports the rest of agentledger; only `events.client` does I/O.
"""
