"""The projector runtime: ordered consumers, the batch buffer, decode, Arrow inserts,
checkpoints, the store, rebuild and the query protocol (client and responder).

A projection module (`projections.agents`, `projections.tasks`, ...) only says how events become
rows; everything else a read model needs lives here. Modules are imported by name.
"""
