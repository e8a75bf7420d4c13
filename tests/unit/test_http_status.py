"""AuthError -> HTTP: every code has an answer, and the answers say nothing more than allowed."""

from __future__ import annotations

import pytest

from authsvc.doors.http_status import oauth_error
from authsvc.errors import AuthError, Code, InvalidCredentials, StoreUnavailable, Throttled


@pytest.mark.parametrize("code", list(Code))
def test_every_code_has_one_answer(code: Code) -> None:
    error = AuthError("detail")
    error.code = code
    answer = oauth_error(error)
    assert 400 <= answer.status < 600 and answer.error


def test_fixed_messages_and_client_authentication() -> None:
    wrong = InvalidCredentials("user alice has no such password")
    assert oauth_error(wrong).body() == {"error": "invalid_grant", "error_description": "invalid credentials"}
    as_client = oauth_error(wrong, client_auth=True)
    assert (as_client.status, as_client.error) == (401, "invalid_client")
    assert as_client.headers["WWW-Authenticate"].startswith("Basic ")
    down = oauth_error(StoreUnavailable("host db1 refused"))
    assert (down.status, down.description) == (503, "service unavailable, retry later")
    assert down.headers == {"Retry-After": "1"}


@pytest.mark.parametrize(("seconds", "header"), [(0.2, "1"), (1.0000001, "1"), (1.5, "2"), (30, "30")])
def test_throttled_is_429_with_retry_after_rounded_up(seconds: float, header: str) -> None:
    answer = oauth_error(Throttled(seconds))
    assert (answer.status, answer.headers["Retry-After"]) == (429, header)
