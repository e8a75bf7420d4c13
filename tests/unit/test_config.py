"""Settings: defaults, one ConfigError naming each bad variable (never echoing
the KEK), and the development KEK kept in the data folder."""

from __future__ import annotations

import base64
import logging
import os
import re
import stat
import traceback
from collections.abc import Iterator
from pathlib import Path

import pytest

from authsvc.config import (
    DEV_KEK_FILE,
    FILE_SETTINGS,
    ConfigError,
    Settings,
    find_data_dir,
    known_settings,
    parse_kek,
)
from authsvc.domain.identity.passwords import Argon2Params
from authsvc.domain.policy import Policy
from authsvc.domain.tokens.kek import KekError

KEY1 = base64.urlsafe_b64encode(bytes(range(32))).decode().rstrip("=")
KEY2 = base64.urlsafe_b64encode(bytes(range(50, 82))).decode().rstrip("=")
SHORT = base64.urlsafe_b64encode(bytes(range(16))).decode().rstrip("=")
LONG = base64.urlsafe_b64encode(bytes(range(33))).decode().rstrip("=")


def config_error(env: dict[str, str]) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        Settings.from_env(env)
    return info.value


def full_text(exc: BaseException) -> str:
    """The message, and everything a traceback would print, causes included."""
    return "".join(traceback.format_exception(exc))


# --- defaults -------------------------------------------------------------------------


def test_defaults() -> None:
    s = Settings.from_env({})
    assert s.listen == "127.0.0.1:50051"  # loopback unless told otherwise
    assert s.tls is None
    assert s.database_url is None  # embedded Postgres
    assert s.data_dir == find_data_dir(Path.cwd())  # absolute, resolved once
    assert s.data_dir.is_absolute() and s.data_dir.name == ".authsvc"
    assert s.reflection is True
    assert s.kek is None
    assert s.policy == Policy()
    assert s.policy.issuer == "authsvc"
    assert s.policy.access_ttl == 300
    assert s.policy.leeway == 30
    assert s.policy.signing_alg == "EdDSA"
    assert s.argon2 == Argon2Params()
    assert s.max_message_bytes == 64 * 1024
    assert s.shutdown_grace == 10.0
    assert s.log_level == "INFO"


def test_from_env_reads_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("AUTHSVC_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AUTHSVC_ACCESS_TOKEN_TTL", "600")
    assert Settings.from_env().policy.access_ttl == 600


def test_empty_values_mean_the_default() -> None:
    s = Settings.from_env(
        {"AUTHSVC_LISTEN": "", "AUTHSVC_ACCESS_TOKEN_TTL": "", "AUTHSVC_SIGNING_ALG": "", "AUTHSVC_KEK": "",
         "AUTHSVC_DATABASE_URL": ""}
    )
    assert s == Settings.from_env({})


def test_values_are_read() -> None:
    s = Settings.from_env(
        {
            "AUTHSVC_LISTEN": "[::]:8443",
            "AUTHSVC_INSECURE_PLAINTEXT": "true",  # behind a TLS-terminating proxy
            "AUTHSVC_DATABASE_URL": "postgresql://db/auth",
            "AUTHSVC_DATA_DIR": "/var/lib/authsvc",
            "AUTHSVC_KEK": f"k1:{KEY1}",
            "AUTHSVC_ISSUER": "https://auth.example.com",
            "AUTHSVC_ACCESS_TOKEN_TTL": "10",
            "AUTHSVC_SIGNING_ALG": "ES256",
            "AUTHSVC_LEEWAY": "0",
            "AUTHSVC_ARGON2_MEMORY_KIB": "65536",
        }
    )
    assert s.listen == "[::]:8443"
    assert s.database_url == "postgresql://db/auth"
    assert s.data_dir == Path("/var/lib/authsvc")
    assert s.policy.issuer == "https://auth.example.com"
    assert s.policy.access_ttl == 10
    assert s.policy.signing_alg == "ES256"
    assert s.policy.leeway == 0
    assert s.argon2.memory_kib == 65536
    assert s.load_kek().current == "k1"


def test_settings_are_frozen() -> None:
    s = Settings.from_env({})
    with pytest.raises(AttributeError):
        s.listen = "0.0.0.0:1"  # type: ignore[misc]


def test_repr_hides_the_kek() -> None:
    s = Settings.from_env({"AUTHSVC_KEK": f"k1:{KEY1}"})
    assert KEY1 not in repr(s)
    assert KEY1 not in str(s)


# --- one error per bad variable, naming it --------------------------------------------


@pytest.mark.parametrize(
    "value",
    ["50051", ":50051", "127.0.0.1:", "127.0.0.1:http", "127.0.0.1:65536", "127.0.0.1:-1", "127.0.0.1: 80",
     "127.0.0.1:80 ", "localhost"],
)
def test_bad_listen(value: str) -> None:
    exc = config_error({"AUTHSVC_LISTEN": value})
    assert str(exc).startswith("AUTHSVC_LISTEN:")


@pytest.mark.parametrize("value", ["127.0.0.1:0", "localhost:65535", "[::1]:50051"])
def test_good_loopback_listen(value: str) -> None:
    s = Settings.from_env({"AUTHSVC_LISTEN": value})
    assert s.listen == value
    assert s.tls is None


@pytest.mark.parametrize("value", ["0.0.0.0:50051", "[::]:50051", "auth.internal:443", "10.0.0.5:50051"])
def test_plaintext_off_loopback_is_refused(value: str) -> None:
    exc = config_error({"AUTHSVC_LISTEN": value})
    assert str(exc).startswith("AUTHSVC_LISTEN:")
    assert "AUTHSVC_TLS_CERT" in str(exc)
    with pytest.raises(ConfigError):
        Settings.from_env({"AUTHSVC_LISTEN": value, "AUTHSVC_INSECURE_PLAINTEXT": "false"})


@pytest.mark.parametrize("value", ["0.0.0.0:50051", "auth.internal:443"])
def test_off_loopback_with_tls_or_an_explicit_opt_out(value: str, tmp_path: Path) -> None:
    assert Settings.from_env({"AUTHSVC_LISTEN": value, "AUTHSVC_INSECURE_PLAINTEXT": "true"}).listen == value
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_text("cert")
    key.write_text("key")
    s = Settings.from_env({"AUTHSVC_LISTEN": value, "AUTHSVC_TLS_CERT": str(cert), "AUTHSVC_TLS_KEY": str(key)})
    assert s.tls is not None
    assert (s.tls.cert, s.tls.key, s.tls.client_ca) == (cert, key, None)


@pytest.mark.parametrize("value", ["maybe", "2", "on"])
def test_bad_insecure_plaintext_flag(value: str) -> None:
    exc = config_error({"AUTHSVC_LISTEN": "0.0.0.0:1", "AUTHSVC_INSECURE_PLAINTEXT": value})
    assert str(exc).startswith("AUTHSVC_INSECURE_PLAINTEXT:")


@pytest.mark.parametrize("value", ["127.0.0.1:\uff15\uff10\uff10\uff15\uff11", "127.0.0.1:\u00b2"])
def test_listen_port_must_be_ascii_digits(value: str) -> None:
    exc = config_error({"AUTHSVC_LISTEN": value})
    assert str(exc).startswith("AUTHSVC_LISTEN:")


@pytest.mark.parametrize("value", ["abc", "9", "86401", "1.5", "5m", "-300", "0x10", "1e3"])
def test_bad_access_token_ttl(value: str) -> None:
    exc = config_error({"AUTHSVC_ACCESS_TOKEN_TTL": value})
    assert str(exc).startswith("AUTHSVC_ACCESS_TOKEN_TTL:")


@pytest.mark.parametrize(("value", "expected"), [("10", 10), ("86400", 86400), ("300", 300)])
def test_access_token_ttl_bounds(value: str, expected: int) -> None:
    assert Settings.from_env({"AUTHSVC_ACCESS_TOKEN_TTL": value}).policy.access_ttl == expected


@pytest.mark.parametrize(
    ("name", "value"),
    [("AUTHSVC_LEEWAY", "301"), ("AUTHSVC_LEEWAY", "-1"), ("AUTHSVC_REFRESH_TOKEN_TTL", "59"),
     ("AUTHSVC_MFA_MAX_ATTEMPTS", "0"), ("AUTHSVC_ARGON2_TIME_COST", "0"), ("AUTHSVC_SHUTDOWN_GRACE", "x"),
     ("AUTHSVC_LOG_LEVEL", "TRACE"), ("AUTHSVC_ISSUER", "a\nb"), ("AUTHSVC_ISSUER", "x" * 257)],
)
def test_other_bad_settings_are_named(name: str, value: str) -> None:
    assert str(config_error({name: value})).startswith(f"{name}:")


@pytest.mark.parametrize("value", ["HS256", "none", "None", "eddsa", "RS512", "ES256K", "EdDSA "])
def test_bad_signing_alg(value: str) -> None:
    exc = config_error({"AUTHSVC_SIGNING_ALG": value})
    assert str(exc).startswith("AUTHSVC_SIGNING_ALG:")


@pytest.mark.parametrize("alg", ["EdDSA", "ES256", "PS256", "RS256"])
def test_good_signing_alg(alg: str) -> None:
    assert Settings.from_env({"AUTHSVC_SIGNING_ALG": alg}).policy.signing_alg == alg


# --- the KEK ----------------------------------------------------------------------------

BAD_KEKS = {
    "no id": (KEY1, KEY1),
    "empty id": (f":{KEY1}", KEY1),
    "empty key": ("k1:", ""),
    "short key": (f"k1:{SHORT}", SHORT),
    "long key": (f"k1:{LONG}", LONG),
    "bad base64": (f"k1:{KEY1[:-1]}", KEY1[:-1]),
    "second without id": (f"k1:{KEY1},{KEY2}", KEY2),
    "second too short": (f"k1:{KEY1},k2:{SHORT}", SHORT),
    "trailing comma": (f"k1:{KEY1},", KEY1),
    "hex instead of base64": ("k1:" + bytes(range(32)).hex(), bytes(range(32)).hex()),
}


@pytest.mark.parametrize("case", sorted(BAD_KEKS))
def test_bad_kek_is_named_and_never_echoed(case: str) -> None:
    value, material = BAD_KEKS[case]
    exc = config_error({"AUTHSVC_KEK": value})
    assert str(exc).startswith("AUTHSVC_KEK:")
    text = full_text(exc)
    if material:
        assert material not in text
        assert material[:16] not in text
    assert KEY1 not in text and KEY2 not in text


def test_a_kek_with_id_and_key_swapped_is_not_echoed() -> None:
    exc = config_error({"AUTHSVC_KEK": f"{KEY1}:k1"})
    assert KEY1 not in full_text(exc)


@pytest.mark.parametrize("value", [f"k1:{KEY1}!!", f"k1:{KEY1[:20]}$${KEY1[20:]}", f"k1:{KEY1[:20]}.?.{KEY1[20:]}"])
def test_kek_with_stray_characters_is_refused(value: str) -> None:
    assert str(config_error({"AUTHSVC_KEK": value})).startswith("AUTHSVC_KEK:")


def test_kek_with_a_repeated_id_is_refused() -> None:
    assert str(config_error({"AUTHSVC_KEK": f"a:{KEY1},a:{KEY2}"})).startswith("AUTHSVC_KEK:")


@pytest.mark.parametrize(
    "value",
    [f"k1:{KEY1}", f"k1:{KEY1}=", f"k1:{base64.b64encode(bytes(range(32))).decode()}", f" k1:{KEY1} "],
    ids=["unpadded", "padded", "standard alphabet", "spaces around"],
)
def test_good_kek(value: str) -> None:
    kek = Settings.from_env({"AUTHSVC_KEK": value}).load_kek()
    assert kek.current == "k1"
    assert kek.open(*kek.seal(b"x", b"aad"), b"aad") == b"x"


def test_kek_rotation_first_is_current() -> None:
    old = parse_kek(f"k1:{KEY1}")
    kid, sealed = old.seal(b"totp secret", b"aad")
    rotated = parse_kek(f"k2:{KEY2}, k1:{KEY1}")
    assert rotated.current == "k2"
    assert rotated.open(kid, sealed, b"aad") == b"totp secret"
    assert rotated.seal(b"x", b"aad")[0] == "k2"


# --- the development KEK ---------------------------------------------------------------------


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def test_dev_kek_is_created_private_and_reused(
    tmp_path: Path, umask_022: None, caplog: pytest.LogCaptureFixture
) -> None:
    data_dir = tmp_path / "nested" / "data"
    settings = Settings.from_env({"AUTHSVC_DATA_DIR": str(data_dir)})
    assert settings.kek is None
    with caplog.at_level(logging.WARNING, logger="authsvc.config"):
        first = settings.load_kek()
    path = data_dir / DEV_KEK_FILE
    assert path.is_file()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    content = path.read_text()
    kid, sealed = first.seal(b"totp secret", b"aad")

    # The log says loudly that this is a development key, and never shows it.
    assert any("DEVELOPMENT" in r.getMessage() and str(path) in r.getMessage() for r in caplog.records)
    secret_part = content.split(":", 1)[1]
    assert all(secret_part not in r.getMessage() for r in caplog.records)

    second = Settings.from_env({"AUTHSVC_DATA_DIR": str(data_dir)}).load_kek()
    assert path.read_text() == content  # not regenerated
    assert second.current == first.current
    assert second.open(kid, sealed, b"aad") == b"totp secret"


def test_each_data_dir_gets_its_own_dev_kek(tmp_path: Path) -> None:
    a = Settings.from_env({"AUTHSVC_DATA_DIR": str(tmp_path / "a")}).load_kek()
    b = Settings.from_env({"AUTHSVC_DATA_DIR": str(tmp_path / "b")}).load_kek()
    kid, sealed = a.seal(b"x", b"aad")
    with pytest.raises(KekError):
        b.open(kid, sealed, b"aad")


def test_a_configured_kek_never_writes_a_dev_kek(tmp_path: Path) -> None:
    Settings.from_env({"AUTHSVC_DATA_DIR": str(tmp_path), "AUTHSVC_KEK": f"k1:{KEY1}"}).load_kek()
    assert not (tmp_path / DEV_KEK_FILE).exists()


def test_a_corrupt_dev_kek_names_its_file(tmp_path: Path) -> None:
    path = tmp_path / DEV_KEK_FILE
    path.write_text(f"dev:{SHORT}")
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"AUTHSVC_DATA_DIR": str(tmp_path)}).load_kek()
    assert str(info.value).startswith(str(path))
    assert SHORT not in full_text(info.value)


def test_workers_need_a_fixed_port() -> None:
    assert Settings.from_env({}).workers == 1
    assert Settings.from_env({"AUTHSVC_WORKERS": "4", "AUTHSVC_LISTEN": "127.0.0.1:50051"}).workers == 4
    exc = config_error({"AUTHSVC_WORKERS": "2", "AUTHSVC_LISTEN": "127.0.0.1:0"})
    assert str(exc).startswith("AUTHSVC_WORKERS:") and "fixed port" in str(exc)
    # One worker may pick a free port; admin commands do not serve at all.
    assert Settings.from_env({"AUTHSVC_WORKERS": "1", "AUTHSVC_LISTEN": "127.0.0.1:0"}).workers == 1
    env = {"AUTHSVC_WORKERS": "2", "AUTHSVC_LISTEN": "127.0.0.1:0"}
    assert Settings.from_env(env, serving=False).workers == 2


@pytest.mark.parametrize("value", ["0", "65", "two"])
def test_bad_workers(value: str) -> None:
    assert str(config_error({"AUTHSVC_WORKERS": value})).startswith("AUTHSVC_WORKERS:")


@pytest.mark.parametrize(
    ("listen", "http"),
    [("127.0.0.1:00", ""), ("127.0.0.1:50051", "127.0.0.1:65535"), ("127.0.0.1:50051", "127.0.0.1:50050")],
)
def test_workers_ports_must_not_collide(listen: str, http: str) -> None:
    env = {"AUTHSVC_WORKERS": "2", "AUTHSVC_LISTEN": listen, "AUTHSVC_HTTP_LISTEN": http}
    assert str(config_error(env)).split(":")[0] in ("AUTHSVC_WORKERS", "AUTHSVC_HTTP_LISTEN")
    ok = {"AUTHSVC_WORKERS": "2", "AUTHSVC_LISTEN": "127.0.0.1:50051", "AUTHSVC_HTTP_LISTEN": "127.0.0.1:50052"}
    assert Settings.from_env(ok).http_listen == "127.0.0.1:50052"


def test_the_http_side_ports_refuse_plaintext_off_loopback() -> None:
    for name in ("AUTHSVC_HTTP_LISTEN", "AUTHSVC_METRICS_LISTEN"):
        env = {"AUTHSVC_HTTP_LISTEN": "127.0.0.1:8080", name: "0.0.0.0:9090"}
        exc = config_error(env)
        assert str(exc).startswith(f"{name}:") and "AUTHSVC_TLS_CERT" in str(exc)
        assert Settings.from_env({**env, "AUTHSVC_INSECURE_PLAINTEXT": "true"}).http_listen
        assert Settings.from_env(env, serving=False).http_listen  # admin commands open no listener


def test_metrics_listen_needs_the_side_port() -> None:
    assert str(config_error({"AUTHSVC_METRICS_LISTEN": "127.0.0.1:9090"})).startswith("AUTHSVC_METRICS_LISTEN:")
    env = {"AUTHSVC_HTTP_LISTEN": "127.0.0.1:8080", "AUTHSVC_METRICS_LISTEN": "127.0.0.1:9090"}
    assert Settings.from_env(env).metrics_listen == "127.0.0.1:9090"
    workers = {**env, "AUTHSVC_WORKERS": "2", "AUTHSVC_LISTEN": "127.0.0.1:9091"}
    assert str(config_error(workers)).startswith("AUTHSVC_METRICS_LISTEN:")  # worker 1 would take 9091


@pytest.mark.parametrize("value", ["ftp://x", "https://a.example/?q=1", "https://a.example/#f", "auth.example"])
def test_bad_public_url(value: str) -> None:
    env = {"AUTHSVC_HTTP_LISTEN": "127.0.0.1:8080", "AUTHSVC_HTTP_PUBLIC_URL": value}
    assert str(config_error(env)).startswith("AUTHSVC_HTTP_PUBLIC_URL:")
    good = {**env, "AUTHSVC_HTTP_PUBLIC_URL": "https://auth.example.com/"}
    assert Settings.from_env(good).http_public_url == "https://auth.example.com"


# --- integers say what they count ----------------------------------------------------

CONFIG_SOURCE = (Path(__file__).resolve().parents[2] / "authsvc" / "config.py").read_text(encoding="utf-8")
INTEGER_SETTINGS = sorted(set(re.findall(r'reader\.integer\(\s*"(AUTHSVC_[A-Z0-9_]+)"', CONFIG_SOURCE)))
ALL_SETTINGS = sorted(set(re.findall(r'"(AUTHSVC_[A-Z0-9_]*[A-Z0-9])"', CONFIG_SOURCE)))


def test_a_duration_with_a_unit_gets_seconds_a_whole_number() -> None:
    exc = config_error({"AUTHSVC_ACCESS_TOKEN_TTL": "300s"})
    assert str(exc) == "AUTHSVC_ACCESS_TOKEN_TTL: expected seconds, a whole number (such as 300), got '300s'"


@pytest.mark.parametrize("name", INTEGER_SETTINGS)
def test_every_integer_setting_says_what_it_counts(name: str) -> None:
    assert len(INTEGER_SETTINGS) >= 20
    message = str(config_error({name: "1.5"}))
    assert message.startswith(f"{name}: expected ")
    assert "a whole number (such as " in message
    durations = ("_TTL", "_AGE", "_INTERVAL", "_SECONDS", "_GRACE", "_LEEWAY", "_LEAD", "_RECENT_AUTH")
    if name.endswith(durations) or name == "AUTHSVC_LEEWAY":
        assert "expected seconds, a whole number" in message
    if name.endswith("_MS"):
        assert "expected milliseconds, a whole number" in message


# --- unknown names are warned about, derived from what from_env reads -----------------


def test_a_misspelt_setting_is_warned_about_with_the_closest_name() -> None:
    s = Settings.from_env({"AUTHSVC_ACESS_TOKEN_TTL": "600", "AUTHSVC_ZZZZ": "1", "HOME": "/root"})
    assert s.policy.access_ttl == 300  # ignored, as the warning says
    assert s.warnings == (
        "AUTHSVC_ACESS_TOKEN_TTL is not an authsvc setting (did you mean AUTHSVC_ACCESS_TOKEN_TTL?); it is ignored",
        "AUTHSVC_ZZZZ is not an authsvc setting; it is ignored",
    )


def test_every_setting_in_config_py_is_known() -> None:
    """Known names come from the reads themselves: every name config.py reads
    must be read on every call (no read hidden behind another setting)."""
    assert "AUTHSVC_ACCESS_TOKEN_TTL" in ALL_SETTINGS and "AUTHSVC_KEK" in ALL_SETTINGS
    files = {f"{name}_FILE" for name in FILE_SETTINGS}
    assert known_settings() == set(ALL_SETTINGS) | files
    assert Settings.from_env({"AUTHSVC_TEST_DATABASE_URL": "postgresql://x/y"}).warnings == ()  # the suite's own


# --- secrets from files, and the effective configuration ------------------------------


def test_secrets_can_come_from_files(tmp_path: Path) -> None:
    kek_file, url_file = tmp_path / "kek", tmp_path / "url"
    kek_file.write_text(f"k1:{KEY1}\n")  # as `echo` writes it
    url_file.write_text("postgresql://authsvc:hunter22@db:5432/authsvc\n")
    s = Settings.from_env({"AUTHSVC_KEK_FILE": str(kek_file), "AUTHSVC_DATABASE_URL_FILE": str(url_file)})
    assert s.load_kek().current == "k1"
    assert s.database_url == "postgresql://authsvc:hunter22@db:5432/authsvc"
    shown = dict((name, (value, source)) for name, value, source in s.effective)
    assert shown["AUTHSVC_KEK"] == ("k1:****", f"file {kek_file}")
    assert shown["AUTHSVC_DATABASE_URL"] == ("postgresql://authsvc:****@db:5432/authsvc", f"file {url_file}")
    assert KEY1 not in repr(s.effective) and "hunter22" not in repr(s.effective)


@pytest.mark.parametrize("name", ["AUTHSVC_KEK", "AUTHSVC_DATABASE_URL"])
def test_bad_secret_files_are_named(name: str, tmp_path: Path) -> None:
    missing = str(config_error({f"{name}_FILE": str(tmp_path / "nope")}))
    assert missing.startswith(f"{name}_FILE: cannot read ") and "No such file" in missing
    (tmp_path / "empty").write_text("\n")
    assert str(config_error({f"{name}_FILE": str(tmp_path / "empty")})).startswith(f"{name}_FILE: ")
    (tmp_path / "value").write_text(f"k1:{KEY1}")
    both = str(config_error({name: f"k1:{KEY1}", f"{name}_FILE": str(tmp_path / "value")}))
    assert both == f"{name} and {name}_FILE: set one, not both"
    assert KEY1 not in both


def test_a_kek_file_with_a_bad_key_never_echoes_it(tmp_path: Path) -> None:
    (tmp_path / "kek").write_text(f"k1:{SHORT}")
    exc = config_error({"AUTHSVC_KEK_FILE": str(tmp_path / "kek")})
    assert SHORT not in full_text(exc)


def test_the_effective_configuration_lists_every_setting_once() -> None:
    s = Settings.from_env({"AUTHSVC_ACCESS_TOKEN_TTL": "600", "AUTHSVC_KEK": f"k1:{KEY1},k0:{KEY2}"})
    names = [name for name, _, _ in s.effective]
    assert len(names) == len(set(names))
    assert set(names) == set(ALL_SETTINGS)
    shown = dict((name, (value, source)) for name, value, source in s.effective)
    assert shown["AUTHSVC_ACCESS_TOKEN_TTL"] == ("600", "environment")
    assert shown["AUTHSVC_LEEWAY"] == ("30", "default")
    assert shown["AUTHSVC_KEK"] == ("k1:****,k0:****", "environment")
    assert KEY1 not in repr(s.effective) and KEY2 not in repr(s.effective)


# --- a server is refused before it touches anything -----------------------------------


def test_a_server_with_a_database_url_needs_a_kek() -> None:
    exc = config_error({"AUTHSVC_DATABASE_URL": "postgresql://db/auth"})
    assert str(exc).startswith("AUTHSVC_KEK: required with AUTHSVC_DATABASE_URL")
    # Admin commands that never open a secret do not need it; the dev KEK may be allowed.
    assert Settings.from_env({"AUTHSVC_DATABASE_URL": "postgresql://db/auth"}, serving=False).kek is None
    allowed = {"AUTHSVC_DATABASE_URL": "postgresql://db/auth", "AUTHSVC_ALLOW_DEV_KEK": "true"}
    assert Settings.from_env(allowed).allow_dev_kek


def test_reflection_can_be_turned_off() -> None:
    assert Settings.from_env({"AUTHSVC_REFLECTION": "false"}).reflection is False
    assert str(config_error({"AUTHSVC_REFLECTION": "off"})).startswith("AUTHSVC_REFLECTION:")


# --- the data folder is resolved once ----------------------------------------------------


def test_the_data_folder_is_found_from_below(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".authsvc").mkdir()
    below = tmp_path / "a" / "b"
    below.mkdir(parents=True)
    monkeypatch.chdir(below)
    assert Settings.from_env({}).data_dir == tmp_path.resolve() / ".authsvc"
    # An explicit relative folder is the user's choice: resolved against here, once.
    assert Settings.from_env({"AUTHSVC_DATA_DIR": "data"}).data_dir == below.resolve() / "data"


def test_without_a_data_folder_above_it_is_here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert find_data_dir(tmp_path) == tmp_path.resolve() / ".authsvc" or (tmp_path.parents[-1] / ".authsvc").is_dir()


# --- pooling and HA --------------------------------------------------------------------


def test_pooling_defaults_to_sessions_with_listen_on_the_database_url() -> None:
    s = Settings.from_env({})
    assert (s.database_pooling, s.listen_database_url, s.verify_max_staleness) == ("session", None, 10.0)
    assert s.notify_url("postgresql://db/x") == "postgresql://db/x"


def test_transaction_pooling_listens_only_over_a_direct_url() -> None:
    pooled = Settings.from_env({"AUTHSVC_DATABASE_POOLING": "transaction"})
    assert pooled.notify_url("postgresql://bouncer/x") is None  # the reconcile alone
    direct = Settings.from_env(
        {"AUTHSVC_DATABASE_POOLING": "transaction", "AUTHSVC_LISTEN_DATABASE_URL": "postgresql://db/x"}
    )
    assert direct.notify_url("postgresql://bouncer/x") == "postgresql://db/x"
    assert Settings.from_env({"AUTHSVC_NO_NOTIFY": "true"}).notify_url("postgresql://db/x") is None


@pytest.mark.parametrize(
    ("name", "value"), [("AUTHSVC_DATABASE_POOLING", "statement"), ("AUTHSVC_VERIFY_MAX_STALENESS", "-1")]
)
def test_bad_pooling_settings_name_their_variable(name: str, value: str) -> None:
    assert name in str(config_error({name: value}))
