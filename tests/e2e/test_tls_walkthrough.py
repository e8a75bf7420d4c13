"""The README's TLS and mTLS section, run as written: openssl makes the CA and
certificates, authsvc serves mTLS, grpcurl logs a client in with its
certificate alone and gets a certificate-bound token."""

from __future__ import annotations

import base64
import json
import re
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ..support import create_database, drop_database
from .procs import BIN, server_env, serving, stop

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]


def readme_blocks() -> list[str]:
    """The shell blocks of the README section "TLS and mTLS", in order."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("## TLS and mTLS", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)```", section, flags=re.S)


@pytest.fixture
async def database(admin_url) -> AsyncIterator[str]:
    url = await create_database(admin_url, "authsvc_tls")
    yield url
    await drop_database(admin_url, url)


def bash(script: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], cwd=cwd, env=env, capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip


async def test_the_readme_tls_walkthrough(database, tmp_path):
    pki_script, serve_line, login_script = readme_blocks()
    made = bash(pki_script, tmp_path, {"PATH": "/usr/bin:/bin"})
    assert made.returncode == 0, made.stderr
    assert {"ca.crt", "server.crt", "server.key", "billing.crt", "billing.key"} <= {
        p.name for p in (tmp_path / "dev-pki").iterdir()
    }
    # The server as the README starts it, on a free port instead of 50051.
    tls = dict(re.findall(r"(AUTHSVC_TLS_\w+)=(\S+)", serve_line))
    assert set(tls) == {"AUTHSVC_TLS_CERT", "AUTHSVC_TLS_KEY", "AUTHSVC_TLS_CLIENT_CA"}
    env = server_env(database, tmp_path / "data", **{k: str(tmp_path / v) for k, v in tls.items()})
    with serving(env, tmp_path / "server.log") as (proc, addr):
        port = addr.rpartition(":")[2]
        script = login_script.replace(".venv/bin/", f"{BIN}/").replace("localhost:50051", f"localhost:{port}")
        done = bash(script, tmp_path, env)
        assert done.returncode == 0, done.stderr
        token = json.loads(done.stdout)["tokens"]["access_token"]
        body = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        assert set(claims["cnf"]) == {"x5t#S256"} and claims["amr"] == ["mtls"]
        # Without the client certificate the handshake fails.
        bare = re.sub(r" -cert \S+ -key \S+", "", script.splitlines()[1])
        refused = bash(bare + "\n" + "\n".join(script.splitlines()[2:]), tmp_path, env)
        assert refused.returncode != 0
        assert stop(proc) == 0
