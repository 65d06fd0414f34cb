"""HTTP tokens: signed with a nonce of their own, so one can be revoked or replaced alone; the
files in the home decide which signed tokens are still current."""

from __future__ import annotations

from pathlib import Path

from events.core.policy import AGENT, Principal
from services.runtime import credentials


def test_a_token_names_its_principal_and_a_changed_byte_breaks_it(tmp_path: Path) -> None:
    cred = credentials.issue(tmp_path, "agent:architect")
    secret = credentials.token_secret(tmp_path)
    assert cred.token is not None and cred.token.startswith("agl_agent_architect.")
    assert credentials.verify(secret, cred.token) == Principal(AGENT, "architect")
    forged = cred.token.replace("agl_agent_architect.", "agl_agent_coo.")
    assert credentials.verify(secret, forged) is None
    nonce = cred.token.split(".")[1]
    other = cred.token.replace(nonce, ("A" if nonce[0] != "A" else "B") + nonce[1:])
    assert credentials.verify(secret, other) is None


def test_two_issues_give_two_tokens(tmp_path: Path) -> None:
    first = credentials.issue(tmp_path, "agent:architect").token
    second = credentials.issue(tmp_path, "agent:architect").token
    assert first and second and first != second


def test_tokens_issued_before_the_nonce_still_verify(tmp_path: Path) -> None:
    secret = credentials.token_secret(tmp_path)
    old = credentials.sign(secret, AGENT, "architect")
    assert old.count(".") == 1
    assert credentials.verify(secret, old) == Principal(AGENT, "architect")


def test_the_book_follows_the_files(tmp_path: Path) -> None:
    book = credentials.TokenBook(tmp_path)
    me = Principal(AGENT, "architect")
    token = credentials.issue(tmp_path, "agent:architect").token
    assert token and book.current(me, token)
    again = credentials.issue(tmp_path, "agent:architect").token
    assert again and not book.current(me, token) and book.current(me, again)
    assert credentials.revoke(tmp_path, "agent:architect")
    assert not book.current(me, again)
    assert not credentials.revoke(tmp_path, "agent:architect")  # nothing left to revoke
    reader = credentials.issue(tmp_path, "reader").token
    assert reader and book.current(Principal("reader", "reader"), reader)
