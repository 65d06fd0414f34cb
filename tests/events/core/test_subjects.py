"""The subject grammar `<domain>.<aggregate_id>.<event>` and aggregate id validation."""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from events.core.errors import ValidationError
from events.core.subjects import (
    DOMAINS,
    Subject,
    aggregate_filter,
    build,
    check_id,
    command,
    domain_filter,
    event_filter,
    parse,
    query,
)

ID_CHARS = string.ascii_letters + string.digits + "_-"
ids = st.text(alphabet=ID_CHARS, min_size=1, max_size=128)
event_names = st.from_regex(r"[a-z][a-z0-9_]{0,63}", fullmatch=True)
domains = st.sampled_from(DOMAINS)
bad_ids = st.one_of(
    st.just(""),
    st.text(alphabet=ID_CHARS, min_size=129, max_size=200),
    st.tuples(ids, st.sampled_from(list(". *>\t/:@ü\n")), ids).map("".join),
)


@given(domains, ids, event_names)
def test_a_built_subject_parses_back_to_its_parts(domain: str, agg: str, event: str) -> None:
    subject = build(domain, agg, event)
    assert parse(subject) == Subject(domain, agg, event)
    assert str(parse(subject)) == subject


@given(bad_ids)
def test_an_id_outside_the_allowed_alphabet_or_length_is_refused(agg: str) -> None:
    with pytest.raises(ValidationError) as err:
        build("tasks", agg, "claimed")
    assert err.value.field == "$.aggregate_id"
    assert "[A-Za-z0-9_-]{1,128}" in str(err.value)


@given(bad_ids.filter(lambda s: "." not in s and s != ""))
def test_parse_refuses_an_invalid_id_inside_a_subject(agg: str) -> None:
    with pytest.raises(ValidationError, match="invalid aggregate id") as err:
        parse(f"tasks.{agg}.claimed")
    assert err.value.field == "$.subject"


@pytest.mark.parametrize(
    "subject", ["tasks", "tasks.T1", "tasks.T1.claimed.x", "tasks..claimed", "", "a.b.c.d.e"]
)
def test_parse_refuses_anything_but_three_tokens(subject: str) -> None:
    with pytest.raises(ValidationError):
        parse(subject)


def test_a_dot_in_an_id_is_refused_because_it_would_change_routing() -> None:
    with pytest.raises(ValidationError, match="invalid aggregate_id 'TC.FLOW'"):
        build("tasks", "TC.FLOW", "claimed")


def test_an_unknown_domain_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(ValidationError, match="unknown domain 'task'.*tasks") as err:
        parse("task.T1.claimed")
    assert err.value.field == "$.subject"


@pytest.mark.parametrize("event", ["Claimed", "1st", "rate-limited", "", "x" * 65])
def test_an_event_name_must_be_snake_case(event: str) -> None:
    with pytest.raises(ValidationError):
        build("tasks", "T1", event)


def test_the_maximum_id_length_is_accepted() -> None:
    assert check_id("a" * 128) == "a" * 128


def test_filters_and_request_subjects() -> None:
    assert aggregate_filter("tasks", "TC-FLOW-001") == "tasks.TC-FLOW-001.*"
    assert domain_filter("agents") == "agents.>"
    assert event_filter("agents", "heartbeat") == "agents.*.heartbeat"
    assert command("tasks", "claim") == "cmd.tasks.claim"
    assert query("projector") == "q.projector"


@pytest.mark.parametrize(
    "fn", [lambda: query("a.b"), lambda: aggregate_filter("tasks", ">")]
)
def test_wildcards_never_reach_a_request_or_filter_subject(fn) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValidationError):
        fn()
