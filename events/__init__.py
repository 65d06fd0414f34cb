"""The event language of agentledger: types, subjects, streams, codec, deciders and the SDK.

`events.core` is the machinery every domain shares (codec, subjects, streams, registry, keyring,
the event store client); each domain is a module or a package of its own (`events.tasks`,
`events.providers`, `events.agents`, ...); `events.sdk` is the public surface for agents.
Nothing here imports the rest of agentledger; only the SDK clients (`events.core.client`,
`events.tasks.client`) do I/O.
"""
