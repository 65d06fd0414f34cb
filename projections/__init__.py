"""Read models: the projector runtime, one module per projection, and the query protocol."""
