"""Spans are recorded only while something exports them; the trace context travels either way."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ParentBased

from services.runtime import telemetry


@pytest.mark.parametrize("exporting", [False, True])
def test_root_spans_record_only_while_exporting_but_always_carry_a_valid_context(
    monkeypatch: pytest.MonkeyPatch, exporting: bool
) -> None:
    monkeypatch.setattr(telemetry, "_exporting", exporting)
    tracer = TracerProvider(sampler=ParentBased(telemetry.WhileExporting())).get_tracer(__name__)
    with tracer.start_as_current_span("POST /v1/chat/completions") as span:
        assert span.is_recording() is exporting
        ctx = span.get_span_context()
        assert ctx.is_valid and ctx.trace_id != 0
        assert bool(ctx.trace_flags.sampled) is exporting
        with tracer.start_as_current_span("child") as child:
            assert child.get_span_context().trace_id == ctx.trace_id
