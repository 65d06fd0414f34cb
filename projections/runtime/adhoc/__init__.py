"""Ad-hoc SQL out of the projector's way: checked by DuckDB's parser, run in a worker process on a
read-only snapshot under memory, thread and time limits, in slots of its own."""

from projections.runtime.adhoc.guard import REFUSED_FUNCTIONS, check_functions, check_select
from projections.runtime.adhoc.runner import AdHocSql

__all__ = ["REFUSED_FUNCTIONS", "AdHocSql", "check_functions", "check_select"]
