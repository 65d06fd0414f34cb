"""The OpenAI-compatible provider proxy: the handler, one attempt, the stream relay, the
upstream client, the providers fold, probes, metrics and the usage spool."""
