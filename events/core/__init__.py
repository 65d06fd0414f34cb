"""The machinery every domain shares: codec, subjects, streams, registry, metadata, errors,
keyring and the event store client (`events.core.client`, the SDK's I/O).

Modules are imported by name; this package re-exports nothing, so importing one of them never
drags in the others (the codec registers every domain, and every domain imports the registry).
"""
