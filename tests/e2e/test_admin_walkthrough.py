"""The README's "Admin API" section, run as written: the CLI makes the first
admin, grpcurl logs in and drives the AdminService through reflection
(describe, CreateUser, ListUsers, DisableUser, QueryAudit,
RotateClientSecret) against a real ``authsvc serve``."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from ..support import create_database, drop_database
from .procs import BIN, cli, server_env, serving

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
GRPCURL = BIN / "grpcurl"


def readme_blocks() -> list[str]:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Admin API", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)```", section, flags=re.S)


def json_documents(text: str) -> list[Any]:
    """Every JSON object grpcurl printed, in order (each starts with "{" at column 0)."""
    decoder, found, end = json.JSONDecoder(), [], 0
    for match in re.finditer(r"^\{", text, flags=re.MULTILINE):
        if match.start() >= end:
            doc, end = decoder.raw_decode(text, match.start())
            found.append(doc)
    return found


def issue(addr: str, body: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(GRPCURL), "-plaintext", "-d", json.dumps(body), addr, "authsvc.v1.AuthService/Issue"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip


@pytest.fixture
async def database(admin_url) -> AsyncIterator[str]:
    url = await create_database(admin_url, "authsvc_admin_e2e")
    yield url
    await drop_database(admin_url, url)


async def test_the_readme_admin_walkthrough(database, tmp_path):
    login_block, users_block, rotate_block = readme_blocks()
    env = server_env(database, tmp_path / "data")
    printed = cli(env, "client", "add", "billing", "--scope", "orders.read", "--audience", "orders")
    made = re.fullmatch(r"client_id:\s+(\S+)\nclient_secret:\s+(\S+)\n", printed)
    assert made, "unexpected `client add` output"
    client_id, secret = made.groups()
    with serving(env, tmp_path / "serve.log") as (_, addr):
        script = "\n".join((login_block, users_block, rotate_block)).replace(".venv/bin/", f"{BIN}/")
        script = script.replace("ADDR=127.0.0.1:50051", f"ADDR={addr}")
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, env={**env, "CLIENT_ID": client_id},
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert "authsvc.admin.v1.AdminService is a service" in done.stdout
        for rpc in ("CreateUser", "ListUsers", "DisableUser", "RotateClientSecret", "QueryAudit", "RevokeKey"):
            assert f"rpc {rpc} (" in done.stdout, rpc
        listed, disabled, audit, rotated = json_documents(done.stdout)

        users = {u["username"]: u for u in listed["users"]}
        assert set(users) == {"root", "bob"}
        assert users["bob"]["scope"] == ["read"] and "disabled" not in users["bob"]
        assert disabled == {}  # no sessions to revoke
        root, bob = users["root"]["id"], users["bob"]["id"]
        events = {e["event"]: e for e in audit["events"]}
        assert events["user_disabled"]["actor"] == root
        assert events["user_disabled"]["subject"] == bob
        assert {e["event"] for e in audit["events"]} >= {"user_created", "user_disabled", "admin_call"}

        refused = issue(addr, {"password": {"username": "bob", "password": "another long passphrase"}})
        assert refused.returncode != 0 and "Unauthenticated" in refused.stderr
        # Both secrets work during the overlap.
        assert rotated["client"]["client_id"] == client_id and rotated["client"]["previous_secret_expires_at"]
        for current in (secret, rotated["client_secret"]):
            answer = issue(addr, {"client": {"client_id": client_id, "client_secret": current}})
            assert answer.returncode == 0, answer.stderr
        log = (tmp_path / "serve.log").read_text()
        for never in (secret, rotated["client_secret"], "a long admin passphrase", "another long passphrase"):
            assert never not in log


async def test_the_cli_disables_and_rotates_on_the_database(database, tmp_path):
    """The same rules without the server's API: what an operator uses to bootstrap,
    or when the API is not reachable. A running server sees the change at once."""
    env = server_env(database, tmp_path / "data")
    cli(env, "user", "add", "carol", "--scope", "read", "--audience", "orders", "--password-stdin",
        stdin="a third long passphrase\n")  # fmt: skip
    printed = cli(env, "client", "add", "ledger", "--scope", "orders.read", "--audience", "orders")
    made = re.fullmatch(r"client_id:\s+(\S+)\nclient_secret:\s+(\S+)\n", printed)
    assert made, printed
    client_id, old = made.groups()
    carol = {"password": {"username": "carol", "password": "a third long passphrase"}}
    with serving(env, tmp_path / "serve.log") as (_, addr):
        assert issue(addr, carol).returncode == 0
        assert cli(env, "user", "disable", "carol") == "carol disabled; 1 session(s) revoked\n"
        refused = issue(addr, carol)
        assert refused.returncode != 0 and "Unauthenticated" in refused.stderr
        assert cli(env, "user", "enable", "carol") == "carol enabled\n"
        assert issue(addr, carol).returncode == 0

        printed = cli(env, "client", "rotate-secret", client_id, "--overlap", "0")
        rotated = re.fullmatch(r"client_secret: (\S+)\n", printed)
        assert rotated, "unexpected `client rotate-secret` output"
        assert issue(addr, {"client": {"client_id": client_id, "client_secret": old}}).returncode != 0
        assert issue(addr, {"client": {"client_id": client_id, "client_secret": rotated.group(1)}}).returncode == 0
        events = [line for line in cli(env, "audit", "list", "--subject", client_id, "--json").splitlines() if line]
        rotation = [json.loads(line) for line in events if '"client_secret_rotated"' in line]
        assert len(rotation) == 1 and rotation[0]["actor"].startswith("cli:")
