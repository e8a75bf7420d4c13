"""The client package works on its own: installed from clients/python into an
empty folder and used from a separate interpreter that can import that folder
plus the package's declared dependencies, and nothing of the server."""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from ..integration.helpers import add_client

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
TIMEOUT = 120.0  # seconds for pip, and for the probe

# Runs in the isolated interpreter; reads its inputs as JSON on stdin and
# prints one JSON object.
PROBE = """\
import json
import sys

given = json.load(sys.stdin)
seen = {"sys_path": sys.path}
try:
    import authsvc
except ModuleNotFoundError:
    seen["authsvc"] = None
else:
    seen["authsvc"] = authsvc.__file__

import grpc

import authsvc_client
from authsvc_client import KeySet, Requirements, pb, verify_access_token
from authsvc_client import grpc as pb_grpc

seen["authsvc_client"] = authsvc_client.__file__
with grpc.insecure_channel(given["addr"]) as channel:
    stub = pb_grpc.AuthServiceStub(channel)
    issued = stub.Issue(
        pb.IssueRequest(
            client=pb.ClientCredential(client_id=given["client_id"], client_secret=given["client_secret"]),
            audience=["orders"],
        ),
        timeout=30,
    )
    tokens = issued.tokens
    verified = stub.Verify(
        pb.VerifyRequest(token=tokens.access_token, audience="orders", required_scope=["orders.read"]), timeout=30
    )
    wrong = stub.Verify(pb.VerifyRequest(token=tokens.access_token, audience="billing-x"), timeout=30)
    jwks = stub.GetJWKS(pb.GetJWKSRequest(), timeout=30).jwks_json

local = verify_access_token(
    tokens.access_token,
    keys=KeySet.from_jwks(jwks),
    issuer=given["issuer"],
    requirements=Requirements(audience="orders", scopes=("orders.read",)),
    now=given["now"],
)
seen["issued_scope"] = list(tokens.scope)
seen["verify"] = {
    "active": verified.active,
    "sub": verified.claims.sub,
    "client_id": verified.claims.client_id,
    "aud": list(verified.claims.aud),
}
seen["wrong_audience"] = pb.InactiveReason.Name(wrong.reason)
seen["local"] = {"sub": local.sub, "jti": local.jti, "jti_rpc": verified.claims.jti}
seen["loaded_from"] = sorted(
    {getattr(m, "__file__", None) or "" for m in list(sys.modules.values())} - {""}
)
print(json.dumps(seen))
"""


def _needed(req: Requirement) -> bool:
    """Required without any extra (``jwcrypto; extra == "jwe"`` is not)."""
    return req.marker is None or req.marker.evaluate({"extra": ""})


def _closure(names: list[str]) -> list[metadata.Distribution]:
    """The named distributions and everything they require (no extras)."""
    found: dict[str, metadata.Distribution] = {}
    todo = list(names)
    while todo:
        req = Requirement(todo.pop())
        key = req.name.lower().replace("_", "-")
        if key in found or not _needed(req):
            continue
        dist = metadata.distribution(req.name)
        found[key] = dist
        todo.extend(dist.requires or [])
    return list(found.values())


def _link_site(dists: list[metadata.Distribution], site: Path) -> None:
    """A folder holding symlinks to exactly the files of ``dists``."""
    for dist in dists:
        for file in dist.files or []:
            if file.parts[0] == ".." or "__pycache__" in file.parts:
                continue  # console scripts; byte code
            link = site / file
            link.parent.mkdir(parents=True, exist_ok=True)
            if not link.exists():
                link.symlink_to(Path(str(dist.locate_file(file))).resolve())


async def _run(*argv: str, stdin: bytes | None = None, env: dict[str, str] | None = None, cwd: Path | None = None):
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        cwd=cwd,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(stdin), TIMEOUT)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, f"{argv[:3]} exited {proc.returncode}:\n{err.decode()}"
    return out.decode()


async def test_installed_client_package_issues_and_verifies(app, store, clock, settings, tmp_path):
    # Install from a copy, so that the build leaves nothing behind in the repo.
    source = tmp_path / "src"
    shutil.copytree(
        REPO / "clients/python", source, ignore=shutil.ignore_patterns("*.egg-info", "build", "__pycache__")
    )
    target = tmp_path / "target"
    await _run(
        sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", "--no-build-isolation",
        "--target", str(target), str(source),
    )  # fmt: skip
    installed = list(metadata.distributions(path=[str(target)]))
    assert [d.metadata["Name"] for d in installed] == ["authsvc-client"]
    assert (target / "authsvc_client" / "_proto" / "auth_pb2.py").is_file()

    # Only what the installed package declares: grpcio, protobuf, cryptography
    # and their own requirements, as symlinks.
    deps = tmp_path / "deps"
    declared = [r for r in installed[0].requires or [] if _needed(Requirement(r))]
    assert {Requirement(r).name for r in declared} == {"grpcio", "protobuf", "cryptography", "pynacl"}
    _link_site(_closure(declared), deps)

    client = await add_client(store, clock)
    given = {
        "addr": f"127.0.0.1:{app.port}",
        "client_id": client.id,
        "client_secret": client.secret,
        "issuer": settings.policy.issuer,
        "now": clock.now(),  # the in-process server's (fake) clock
    }
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE, encoding="utf-8")
    # -S: no site-packages and no .pth files (so no editable installs); -P: not
    # the script's folder. sys.path is PYTHONPATH, then the standard library.
    out = await _run(
        sys.executable, "-S", "-s", "-P", str(probe),
        stdin=json.dumps(given).encode(),
        env={"PYTHONPATH": f"{target}:{deps}", "PYTHONDONTWRITEBYTECODE": "1"},
        cwd=tmp_path,
    )  # fmt: skip
    seen = json.loads(out)

    assert seen["sys_path"][:2] == [str(target), str(deps)]
    assert seen["authsvc"] is None, f"the server package was importable: {seen['authsvc']}"
    assert seen["authsvc_client"] == str(target / "authsvc_client" / "__init__.py")
    assert not [f for f in seen["loaded_from"] if f.startswith(str(REPO))]

    assert seen["issued_scope"] == ["orders.read"]
    assert seen["verify"] == {"active": True, "sub": client.id, "client_id": client.id, "aud": ["orders"]}
    assert seen["wrong_audience"] == "INACTIVE_REASON_WRONG_AUDIENCE"
    assert seen["local"]["sub"] == client.id
    assert seen["local"]["jti"] == seen["local"]["jti_rpc"]
