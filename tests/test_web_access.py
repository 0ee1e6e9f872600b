"""Who may see the web view (core/web_access.py): the token by header, query or cookie; 401
without one, 403 with a wrong one. Pure."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from snakepit_actors.core.web_access import MIN_TOKEN_CHARS, check_access, new_token

TOKEN = "s3cret-token-0123456789"


def test_the_token_is_accepted_as_bearer_header_query_or_cookie() -> None:
    assert check_access(TOKEN, authorization=f"Bearer {TOKEN}").granted
    assert check_access(TOKEN, authorization=f"bearer  {TOKEN} ").granted
    assert check_access(TOKEN, cookie=TOKEN).granted
    by_query = check_access(TOKEN, query=TOKEN)
    assert by_query.granted and by_query.set_cookie


def test_no_credential_is_401_and_a_wrong_one_is_403() -> None:
    assert check_access(TOKEN).status == 401
    assert check_access(TOKEN, authorization="Basic abc").status == 401
    assert check_access(TOKEN, authorization="Bearer ").status == 401
    assert check_access(TOKEN, cookie="nope").status == 403
    assert check_access(TOKEN, query="nope", cookie=TOKEN).status == 403  # the query decides
    assert check_access(TOKEN, authorization="Bearer nope", cookie=TOKEN).status == 403


def test_an_empty_node_token_refuses_everyone() -> None:
    assert check_access("", cookie="").status == 401
    assert check_access("", authorization="Bearer x").status == 403


def test_new_tokens_are_long_and_distinct() -> None:
    tokens = {new_token() for _ in range(20)}
    assert len(tokens) == 20 and all(len(t) >= MIN_TOKEN_CHARS for t in tokens)


@given(st.text(min_size=1, max_size=60))
def test_any_other_string_is_refused_wherever_it_is_sent(given_token: str) -> None:
    if given_token == TOKEN:
        return
    for access in (check_access(TOKEN, cookie=given_token),
                   check_access(TOKEN, query=given_token)):
        assert access.status == 403 and not access.set_cookie
