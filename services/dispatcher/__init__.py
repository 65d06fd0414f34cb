"""The dispatcher service: its loop, pure policy, the watched run, the outcome, the agent
session file and the wake paths."""
