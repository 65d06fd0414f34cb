"""The `agentledger` command line: `main` parses, a module per command group runs, `output`
prints."""
