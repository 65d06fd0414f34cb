"""The tasks command service (`cmd.tasks.*`): the service and its in-memory fold of TASKS and
MAIL."""
