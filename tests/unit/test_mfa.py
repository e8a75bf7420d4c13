"""TOTP (RFC 6238): drift window, single use of a time step, code format, and
the provisioning URI. Time is a number passed in; nothing sleeps."""

from __future__ import annotations

import base64
from urllib.parse import parse_qs, unquote, urlsplit

import pyotp
import pytest

from authsvc.domain.identity import mfa

SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
# The start of a step, plus a little, so that now +- 29 s stays in known steps.
STEP = 56_666_667
NOW = STEP * mfa.STEP_SECONDS + 7.25


def code_at(step: int, secret: str = SECRET) -> str:
    return str(pyotp.TOTP(secret, digits=mfa.DIGITS, interval=mfa.STEP_SECONDS).generate_otp(step))


def test_parameters() -> None:
    assert (mfa.STEP_SECONDS, mfa.DIGITS, mfa.DRIFT_STEPS) == (30, 6, 1)


def test_rfc6238_test_vector() -> None:
    # RFC 6238 appendix B, SHA-1 seed "12345678901234567890", T = 59 s: 94287082 (8 digits).
    secret = base64.b32encode(b"12345678901234567890").decode()
    assert mfa.matching_step(secret, "287082", now=59, last_used_step=-1) == 1


def test_current_code_is_accepted() -> None:
    assert mfa.matching_step(SECRET, code_at(STEP), NOW, last_used_step=0) == STEP


def test_agrees_with_pyotp_at_the_same_time() -> None:
    code = pyotp.TOTP(SECRET).at(NOW)
    assert mfa.matching_step(SECRET, code, NOW, last_used_step=0) == STEP


@pytest.mark.parametrize("offset", [-1, 1])
def test_neighbouring_steps_are_accepted_for_drift(offset: int) -> None:
    assert mfa.matching_step(SECRET, code_at(STEP + offset), NOW, last_used_step=0) == STEP + offset


@pytest.mark.parametrize("offset", [-3, -2, 2, 3, 100])
def test_steps_further_away_are_rejected(offset: int) -> None:
    code = code_at(STEP + offset)
    assert code not in {code_at(STEP + d) for d in (-1, 0, 1)}  # fixed secret: no chance collision
    assert mfa.matching_step(SECRET, code, NOW, last_used_step=0) is None


def test_window_edges_follow_the_clock() -> None:
    start = STEP * mfa.STEP_SECONDS
    code = code_at(STEP)
    # The code of STEP is good from the start of STEP - 1 until the end of STEP + 1.
    assert mfa.matching_step(SECRET, code, start - 30, last_used_step=0) == STEP
    assert mfa.matching_step(SECRET, code, start + 59.999, last_used_step=0) == STEP
    assert mfa.matching_step(SECRET, code, start - 30.001, last_used_step=0) is None
    assert mfa.matching_step(SECRET, code, start + 60, last_used_step=0) is None


def test_a_step_is_accepted_once_only() -> None:
    code = code_at(STEP)
    step = mfa.matching_step(SECRET, code, NOW, last_used_step=0)
    assert step == STEP
    # The caller records the step; the same code again is a replay.
    assert mfa.matching_step(SECRET, code, NOW, last_used_step=step) is None
    assert mfa.matching_step(SECRET, code, NOW + 20, last_used_step=step) is None


@pytest.mark.parametrize("offset", [-1, 0, 1])
def test_steps_at_or_below_the_last_used_are_rejected(offset: int) -> None:
    code = code_at(STEP + offset)
    assert mfa.matching_step(SECRET, code, NOW, last_used_step=STEP + offset) is None
    assert mfa.matching_step(SECRET, code, NOW, last_used_step=STEP + 1) is None
    assert mfa.matching_step(SECRET, code, NOW, last_used_step=STEP + offset - 1) == STEP + offset


def test_an_older_code_after_a_newer_one_is_rejected() -> None:
    newer = mfa.matching_step(SECRET, code_at(STEP + 1), NOW, last_used_step=0)
    assert newer == STEP + 1
    assert mfa.matching_step(SECRET, code_at(STEP), NOW, last_used_step=newer) is None


@pytest.mark.parametrize(
    "code",
    [
        "",
        "12345",
        "1234567",
        "12345a",
        "abcdef",
        " 12345",
        "12345 ",
        "123 456",
        "-12345",
        "+12345",
        "1234.5",
        "\uff11\uff12\uff13\uff14\uff15\uff16",  # full-width digits
        "\u0661\u0662\u0663\u0664\u0665\u0666",  # Arabic-Indic digits
        "¹²³⁴⁵⁶",  # superscripts: str.isdigit() says True
    ],
)
def test_malformed_codes_are_rejected(code: str) -> None:
    assert mfa.matching_step(SECRET, code, NOW, last_used_step=0) is None


def test_a_current_code_with_whitespace_is_not_trimmed() -> None:
    code = code_at(STEP)
    assert mfa.matching_step(SECRET, f" {code}", NOW, last_used_step=0) is None
    assert mfa.matching_step(SECRET, f"{code}\n", NOW, last_used_step=0) is None


def test_another_secret_does_not_match() -> None:
    code = code_at(STEP, "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ")
    assert code not in {code_at(STEP + d) for d in (-1, 0, 1)}  # fixed secrets: no chance collision
    assert mfa.matching_step(SECRET, code, NOW, last_used_step=0) is None


def test_new_secret() -> None:
    secrets = {mfa.new_secret() for _ in range(20)}
    assert len(secrets) == 20
    for secret in secrets:
        assert len(secret) == 32
        assert len(base64.b32decode(secret)) == 20  # 160 bits (RFC 4226 section 4)


def test_provisioning_uri() -> None:
    secret = mfa.new_secret()
    uri = mfa.provisioning_uri(secret, "alice@example.com", "Example Corp")
    parts = urlsplit(uri)
    assert parts.scheme == "otpauth"
    assert parts.netloc == "totp"
    assert unquote(parts.path) == "/Example Corp:alice@example.com"
    query = parse_qs(parts.query)
    assert query["secret"] == [secret]
    assert query["issuer"] == ["Example Corp"]
    assert query.get("digits", ["6"]) == ["6"]
    assert query.get("period", ["30"]) == ["30"]
    assert query.get("algorithm", ["SHA1"]) == ["SHA1"]
    # An authenticator app reading it back gets codes we accept.
    parsed = pyotp.parse_uri(uri)
    assert mfa.matching_step(secret, parsed.at(NOW), NOW, last_used_step=0) == STEP
