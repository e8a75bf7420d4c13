"""The deployment files, checked where no Docker engine runs: the compose
file's wiring against the settings authsvc reads, and the image's health
check. (.ci/run also validates the compose file with `docker-compose config`.)"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from authsvc.config import Settings, known_settings

ROOT = Path(__file__).resolve().parent.parent
KEK = "k1:" + "A" * 43


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    return loaded


def test_the_compose_file_wires_authsvc_to_its_database_and_secrets() -> None:
    services = compose()["services"]
    assert set(services) == {"authsvc", "postgres"}
    authsvc, postgres = services["authsvc"], services["postgres"]
    assert authsvc["build"] == "."
    assert authsvc["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    env = authsvc["environment"]
    assert set(env) <= known_settings(), "the compose file sets a variable authsvc does not read"
    assert "AUTHSVC_KEK" not in env and "AUTHSVC_DATABASE_URL" not in env  # secrets come from files
    declared = set(compose()["secrets"])
    for name in ("AUTHSVC_DATABASE_URL_FILE", "AUTHSVC_KEK_FILE"):
        secret = env[name].removeprefix("/run/secrets/")
        assert secret in authsvc["secrets"] and secret in declared
    assert postgres["environment"]["POSTGRES_PASSWORD_FILE"].removeprefix("/run/secrets/") in postgres["secrets"]
    for file in compose()["secrets"].values():
        assert file["file"].startswith("./secrets/")
    assert "secrets/" in (ROOT / ".gitignore").read_text(encoding="utf-8").split()


def test_the_compose_ports_are_the_listeners_on_loopback() -> None:
    authsvc = compose()["services"]["authsvc"]
    env = authsvc["environment"]
    published = {int(p.split(":")[2]): p for p in authsvc["ports"]}
    for name in ("AUTHSVC_LISTEN", "AUTHSVC_HTTP_LISTEN"):
        port = int(env[name].rpartition(":")[2])
        assert published[port] == f"127.0.0.1:{port}:{port}", name
    assert authsvc["healthcheck"]["test"] == ["CMD", "authsvc", "health"]


def test_the_compose_environment_is_a_configuration_serve_accepts(tmp_path: Path) -> None:
    env = {k: str(v) for k, v in compose()["services"]["authsvc"]["environment"].items()}
    (tmp_path / "authsvc_database_url").write_text("postgresql://authsvc:pw@postgres:5432/authsvc\n")
    (tmp_path / "authsvc_kek").write_text(KEK + "\n")
    env = {k: v.replace("/run/secrets", str(tmp_path)) for k, v in env.items()}
    settings = Settings.from_env(env, serving=True)
    assert settings.database_url == "postgresql://authsvc:pw@postgres:5432/authsvc"
    assert settings.kek == KEK and settings.http_listen == "0.0.0.0:8080"
    assert settings.warnings == ()


def test_the_image_checks_its_health_and_keeps_secrets_out_of_it() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r'^HEALTHCHECK .*CMD \["authsvc", "health"\]$', dockerfile, re.MULTILINE)
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8")
    assert "secrets" in ignored and ".authsvc" in ignored
