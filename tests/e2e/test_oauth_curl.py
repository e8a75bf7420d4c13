"""The README's "OAuth 2.0 over HTTPS" section, run as written: a real
`authsvc serve` with its HTTPS side port, driven by curl (the certificates
come from the "TLS and mTLS" section's openssl commands, as a reader makes them)."""

from __future__ import annotations

import base64
import json
import re
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ..support import create_database, drop_database
from .procs import BIN, server_env, serving

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
README_PORT = "8443"


def section_blocks(title: str) -> list[str]:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)```", section, flags=re.S)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bash(script: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], cwd=cwd, env=env, capture_output=True, text=True, timeout=120,
        check=False,
    )  # fmt: skip


@pytest.fixture
async def database(admin_url) -> AsyncIterator[str]:
    url = await create_database(admin_url, "authsvc_oauth")
    yield url
    await drop_database(admin_url, url)


def claims(token: str) -> dict[str, object]:
    body = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))


async def test_the_readme_oauth_walkthrough(database, tmp_path):
    assert shutil.which("curl") and shutil.which("openssl"), "curl and openssl are installed by .ci/run"
    pki_script, _, tls_login = section_blocks("TLS and mTLS")
    serve_line, commands = section_blocks("OAuth 2.0 over HTTPS")
    made = bash(pki_script, tmp_path, {"PATH": "/usr/bin:/bin"})
    assert made.returncode == 0, made.stderr

    # The server as the README starts it, on a free port instead of 8443.
    assert serve_line.strip().endswith("make run")
    port = str(free_port())
    settings = {k: v.replace(README_PORT, port) for k, v in re.findall(r"(AUTHSVC_\w+)=(\S+)", serve_line)}
    files = {k: str(tmp_path / v) for k, v in settings.items() if k.startswith("AUTHSVC_TLS_")}
    env = server_env(database, tmp_path / "data", **{**settings, **files})
    register_mtls = next(line for line in tls_login.splitlines() if line.startswith("MTLS_CLIENT_ID="))
    script = "\n".join((register_mtls, commands)).replace(".venv/bin/", f"{BIN}/")
    script = script.replace(f"localhost:{README_PORT}", f"localhost:{port}")
    with serving(env, tmp_path / "server.log"):
        done = bash(script, tmp_path, env)
    assert done.returncode == 0, done.stderr
    metadata, active, revoked, inactive, mtls_token = [line for line in done.stdout.splitlines() if line]

    document = json.loads(metadata)
    assert document["issuer"] == f"https://localhost:{port}"
    assert document["token_endpoint"] == f"https://localhost:{port}/oauth2/token"
    assert "tls_client_auth" in document["token_endpoint_auth_methods_supported"]
    introspected = json.loads(active)
    assert introspected["active"] is True and introspected["aud"] == ["orders"]
    assert introspected["scope"] == "orders.read" and introspected["iss"] == f"https://localhost:{port}"
    assert revoked == "200"
    assert json.loads(inactive) == {"active": False}
    token = json.loads(mtls_token)
    assert token["token_type"] == "Bearer" and "refresh_token" not in token
    assert "x5t#S256" in claims(token["access_token"])["cnf"]
    log = (tmp_path / "server.log").read_text()
    assert token["access_token"] not in log and "HTTP side port on port" in log
