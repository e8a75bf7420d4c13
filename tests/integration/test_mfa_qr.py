"""Issue 15: EnrollMFA also gives the otpauth URI as a QR code (SVG and
PNG). A real decoder (zbar) reads the PNG back to the same URI, which names
the issuer and the account as authenticator apps expect. An operator can
enrol a user at a terminal: ``authsvc user enroll-mfa NAME``."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from urllib.parse import parse_qs, unquote, urlsplit

import pyotp
from PIL import Image
from pyzbar.pyzbar import ZBarSymbol, decode  # type: ignore[import-untyped]

from authsvc_client import pb

from ..conftest import TEST_KEK
from .helpers import add_user, bearer, self_login


def read_qr(png: bytes) -> list[str]:
    return [d.data.decode("utf-8") for d in decode(Image.open(io.BytesIO(png)), symbols=[ZBarSymbol.QRCODE])]


async def test_enroll_mfa_gives_a_qr_code_of_the_uri(stub, store, passwords, clock, settings) -> None:
    user = await add_user(store, passwords, clock)
    tokens = await self_login(stub, user)
    answer = await stub.EnrollMFA(pb.EnrollMFARequest(), metadata=bearer(tokens.access_token))
    uri = urlsplit(answer.otpauth_uri)
    issuer = settings.policy.issuer
    assert (uri.scheme, uri.netloc, unquote(uri.path)) == ("otpauth", "totp", f"/{issuer}:{user.name}")
    query = parse_qs(uri.query)
    assert query["issuer"] == [issuer] and query["secret"] == [answer.secret]
    assert read_qr(answer.qr_png) == [answer.otpauth_uri]
    assert answer.qr_png.startswith(b"\x89PNG\r\n\x1a\n")
    assert answer.qr_svg.startswith("<svg") and answer.qr_svg.rstrip().endswith("</svg>")


async def test_an_operator_enrols_a_user_at_the_terminal(store, passwords, clock, database_url) -> None:
    user = await add_user(store, passwords, clock)
    env = {
        **os.environ,
        "AUTHSVC_DATABASE_URL": database_url,
        "AUTHSVC_KEK": TEST_KEK,
        "AUTHSVC_ISSUER": "authsvc-test",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "authsvc", "user", "enroll-mfa", user.name],
        env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stdin is not None
    shown: list[str] = []
    while not shown or "enter the key" not in shown[-1]:
        line = proc.stdout.readline()
        assert line, proc.stderr.read() if proc.stderr else ""
        shown.append(line)
    assert sum("█" in line or "▀" in line or "▄" in line for line in shown) > 10  # the QR code, drawn
    secret = shown[-1].split()[-1]
    out, err = proc.communicate(pyotp.TOTP(secret).now() + "\n", timeout=60)
    assert proc.returncode == 0, err
    assert "MFA enrolled" in out and len([line for line in out.splitlines() if line.startswith("  ")]) == 10
    enrolment = await store.totp(user.id)
    assert enrolment is not None and enrolment.confirmed
