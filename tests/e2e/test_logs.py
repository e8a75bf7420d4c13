"""Issue 15: ``AUTHSVC_LOG_FORMAT=json``. A real ``authsvc serve`` logs one
JSON object a line: one line per RPC (method, status, duration, peer, trace
id, subject) and security lines for operators (failed logins, refresh-token
reuse); and never a token, password, code or secret, in any line."""

from __future__ import annotations

import json
from pathlib import Path

import grpc
import pytest

from authsvc_client import grpc as pb_grpc
from authsvc_client import pb

from .procs import TEST_KEK, cli, server_env, serving

pytestmark = pytest.mark.e2e

PASSWORD = "log-test correct horse battery"
WRONG = "log-test wrong password 7Q"


async def test_json_logs_have_a_line_per_rpc_and_no_secret(replica_db, tmp_path: Path) -> None:
    url, client_id, client_secret = replica_db
    env = server_env(url, tmp_path, AUTHSVC_LOG_FORMAT="json", AUTHSVC_LOG_LEVEL="DEBUG")
    user_id = cli(env, "user", "add", "carol", "--audience", "orders", "--password-stdin", stdin=PASSWORD + "\n")
    user_id = user_id.split()[-1]
    log = tmp_path / "serve.log"
    secrets = [PASSWORD, WRONG, client_secret, TEST_KEK.split(":", 1)[1]]
    with serving(env, log) as (_, addr):
        async with grpc.aio.insecure_channel(addr) as channel:
            stub = pb_grpc.AuthServiceStub(channel)
            cred = pb.PasswordCredential(username="carol", password=PASSWORD)
            tokens = (await stub.Issue(pb.IssueRequest(password=cred, audience=["orders"]))).tokens
            secrets += [tokens.access_token, tokens.refresh_token, tokens.refresh_token.split(".")[1]]
            with pytest.raises(grpc.aio.AioRpcError):
                await stub.Issue(pb.IssueRequest(password=pb.PasswordCredential(username="carol", password=WRONG)))
            with pytest.raises(grpc.aio.AioRpcError):
                wrong = pb.ClientCredential(client_id=client_id, client_secret=client_secret[:-2] + "xx")
                await stub.Issue(pb.IssueRequest(client=wrong))
            await stub.Verify(pb.VerifyRequest(token=tokens.access_token, audience="orders"))
            new = (await stub.Refresh(pb.RefreshRequest(refresh_token=tokens.refresh_token))).tokens
            secrets += [new.access_token, new.refresh_token]
            with pytest.raises(grpc.aio.AioRpcError):  # the spent token again: reuse
                await stub.Refresh(pb.RefreshRequest(refresh_token=tokens.refresh_token))
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]  # every line is JSON
    rpcs = [x for x in lines if x["logger"] == "authsvc.rpc"]
    assert [(x["rpc_method"], x["status"]) for x in rpcs] == [
        ("Issue", "OK"), ("Issue", "UNAUTHENTICATED"), ("Issue", "UNAUTHENTICATED"), ("Verify", "OK"),
        ("Refresh", "OK"), ("Refresh", "UNAUTHENTICATED"),
    ]  # fmt: skip
    for x in rpcs:
        assert x["peer"].startswith("ipv4:127.0.0.1:") and x["duration_ms"] > 0 and "trace_id" in x
    assert rpcs[0]["subject"] == user_id and rpcs[4]["subject"] == user_id
    security = [(x["security_event"], x["subject"]) for x in lines if x["logger"] == "authsvc.security"]
    assert ("login_failed", user_id) in security and ("refresh_reuse_detected", user_id) in security
    assert ("login_failed", client_id) in security
    text = log.read_text()
    assert [s for s in secrets if s in text] == []
