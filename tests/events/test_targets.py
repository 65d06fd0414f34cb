from __future__ import annotations

from datetime import UTC, datetime

import pytest

from events import targets
from events.core.errors import ValidationError
from events.targets import Create, Remove, TargetCreated, TargetUpdated, Update

NOW = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)
CREATED = TargetCreated(kind="telegram", settings={"chat_id": "42"}, default=True)


def test_a_kinds_required_field_is_named_when_missing() -> None:
    with pytest.raises(ValidationError, match="needs 'bot_token'") as exc:
        targets.check_fields("telegram", {"chat_id": "42"})
    assert exc.value.field == "$.bot_token"


def test_an_unknown_field_of_a_kind_is_refused() -> None:
    with pytest.raises(ValidationError, match="unknown field 'token'"):
        targets.check_fields("discord", {"url": "https://x", "token": "y"})


def test_secret_fields_are_split_from_the_plain_ones() -> None:
    plain, secret = targets.split_secrets("feishu", {"url": "https://open.feishu.cn/x", "signing_secret": "s"})
    assert plain == {} and secret == {"url": "https://open.feishu.cn/x", "signing_secret": "s"}


def test_a_target_is_created_once() -> None:
    state, _ = targets.evolve(targets.initial_state("owner"), CREATED, NOW)
    with pytest.raises(targets.AlreadyExists, match="owner already exists"):
        targets.decide(Create(event=CREATED), state, NOW)


def test_an_update_that_changes_nothing_decides_nothing() -> None:
    state, _ = targets.evolve(targets.initial_state("owner"), CREATED, NOW)
    assert targets.decide(Update(event=TargetUpdated(default=True)), state, NOW) == []
    assert targets.decide(Update(event=TargetUpdated(enabled=False)), state, NOW) == [TargetUpdated(enabled=False)]


def test_a_removed_target_stays_removed() -> None:
    state, _ = targets.evolve(targets.initial_state("owner"), CREATED, NOW)
    [removed] = targets.decide(Remove(reason="gone"), state, NOW)
    state, _ = targets.evolve(state, removed, NOW)
    with pytest.raises(targets.NotFound, match="was removed"):
        targets.decide(Update(event=TargetUpdated(enabled=False)), state, NOW)
