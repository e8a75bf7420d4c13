"""The code base's own checks, run as tests: lint, types, generated code
current, and the import rules of the layers (docs/architecture.md)."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PROTO_PACKAGE = ROOT / "clients" / "python" / "authsvc_client" / "_proto"


def _run(*args: str | Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )


def _tool(name: str) -> Path:
    path = BIN / name
    if not path.exists():
        pytest.fail(f"{name} is not installed beside {sys.executable}: run `make install`")
    return path


def test_ruff() -> None:
    result = _run(_tool("ruff"), "check", "--no-fix", "--output-format=concise", ".")
    assert result.returncode == 0, f"ruff check failed:\n{result.stdout}{result.stderr}"


def test_mypy() -> None:
    # Files and strictness come from [tool.mypy] in pyproject.toml.
    result = _run(_tool("mypy"))
    assert result.returncode == 0, f"mypy failed:\n{result.stdout}{result.stderr}"


def _files(directory: Path) -> dict[str, bytes]:
    return {
        p.relative_to(directory).as_posix(): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    }


def test_generated_protobuf_code_is_current(tmp_path: Path) -> None:
    """`make proto` must have been run after the last change to protos/."""
    out = tmp_path / "_proto"
    result = _run(sys.executable, ROOT / "scripts" / "genproto.py", out)
    assert result.returncode == 0, f"genproto failed:\n{result.stdout}{result.stderr}"
    fresh, committed = _files(out), _files(PROTO_PACKAGE)
    assert fresh, "genproto wrote nothing"
    assert sorted(fresh) == sorted(committed), "generated files differ from the committed ones: run `make proto`"
    stale = [name for name in fresh if fresh[name] != committed[name]]
    assert not stale, f"stale generated code (run `make proto`): {stale}"


# --- import rules ----------------------------------------------------------------


def _imports(path: Path, package: str) -> Iterator[tuple[int, str]]:
    """Every module ``path`` imports, relative imports resolved against ``package``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = parts[: len(parts) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            yield node.lineno, module
            # `from authsvc import store` imports the module authsvc.store.
            for alias in node.names:
                yield node.lineno, f"{module}.{alias.name}"
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name | ast.Attribute)
            and (node.func.id if isinstance(node.func, ast.Name) else node.func.attr) in ("__import__", "import_module")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            yield node.lineno, node.args[0].value


def _package_of(path: Path) -> str:
    rel = path.relative_to(ROOT / "clients" / "python" if "clients" in path.parts else ROOT)
    parts = list(rel.with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    else:
        parts.pop()  # a module's package
    return ".".join(parts)


def _violations(directory: Path, forbidden: tuple[str, ...]) -> list[str]:
    found = []
    for path in sorted(directory.rglob("*.py")):
        for lineno, module in _imports(path, _package_of(path)):
            if any(module == f or module.startswith(f + ".") for f in forbidden):
                found.append(f"{path.relative_to(ROOT)}:{lineno}: imports {module}")
    return found


def test_import_scanner_sees_every_form(tmp_path: Path) -> None:
    pkg = tmp_path / "authsvc" / "domain"
    pkg.mkdir(parents=True)
    source = pkg / "bad.py"
    source.write_text(
        "import grpc\nimport asyncpg.pool\nfrom grpc import aio\nfrom ..store import postgres\n"
        "from .. import doors\nimport importlib\nimportlib.import_module('grpc.aio')\n"
        "def f():\n    import asyncpg\n"
    )
    found = {m for _, m in _imports(source, "authsvc.domain")}
    assert {"grpc", "asyncpg.pool", "grpc.aio", "authsvc.store.postgres", "authsvc.doors", "asyncpg"} <= found


def test_domain_imports_neither_grpc_nor_asyncpg() -> None:
    domain = ROOT / "authsvc" / "domain"
    assert list(domain.glob("*.py")), "no domain modules found"
    forbidden = (
        "grpc", "grpc_health", "grpc_reflection", "asyncpg", "aiohttp", "authsvc.doors", "authsvc.store",
        "authsvc.server",
    )
    assert _violations(domain, forbidden) == []


def test_client_package_never_imports_the_server() -> None:
    client = ROOT / "clients" / "python" / "authsvc_client"
    assert list(client.glob("*.py")), "no client modules found"
    assert _violations(client, ("authsvc",)) == []
