"""The `reports` read model: reports, every delivery attempt, per-target queues, and alerts.

Tables and columns are documented in `projections.reports.queries`; the fold is in `apply`.
"""

from events.core.streams import stream_name
from events.core.subjects import domain_filter
from projections.reports.apply import apply
from projections.reports.queries import DDL, QUERIES

NAME = "reports"
SOURCES: list[tuple[str, list[str]]] = [
    (stream_name("reports"), [domain_filter("reports")]),
    (stream_name("alerts"), [domain_filter("alerts")]),
]

__all__ = ["DDL", "NAME", "QUERIES", "SOURCES", "apply"]
