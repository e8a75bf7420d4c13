"""Settings: one frozen object read from AUTHSVC_* variables, validated once.

A bad value stops start-up with an error that names the variable (and never
echoes a secret).
"""

from __future__ import annotations

import base64
import logging
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from authsvc.domain.identity.passwords import Argon2Params
from authsvc.domain.identity.throttle import Limit
from authsvc.domain.policy import Policy
from authsvc.domain.tokens.kek import KEY_BYTES, Kek
from authsvc_client import SIGNING_ALGORITHMS

log = logging.getLogger(__name__)

DEV_KEK_FILE = "dev-kek"
_KEK_ID = re.compile(r"[A-Za-z0-9_.-]{1,32}")
_B64 = re.compile(r"[A-Za-z0-9_\-+/]+={0,2}")


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names it."""


_LOOPBACK = ("127.0.0.1", "localhost", "[::1]", "::1")


@dataclass(frozen=True)
class TlsFiles:
    """PEM files for the listener. With ``client_ca`` every client must present
    a certificate that CA signed (mTLS). grpcio offers no "ask but do not
    require" mode: a listener is either TLS or mTLS."""

    cert: Path
    key: Path
    client_ca: Path | None = None

    def read(self) -> tuple[bytes, bytes, bytes | None]:
        ca = self.client_ca.read_bytes() if self.client_ca else None
        return self.cert.read_bytes(), self.key.read_bytes(), ca


#: An HTTP field name (RFC 9110 section 5.1), lower case as HTTP/2 sends it.
_HEADER_NAME = re.compile(r"[a-z0-9!#$%&'*+.^_`|~-]{1,64}")
#: Headers an upstream relies on from the client or from Envoy: never ours to set.
_RESERVED_HEADERS = frozenset({"authorization", "host", "content-length", "content-type", "te", "cookie"})


@dataclass(frozen=True)
class EnvoySettings:
    """The ext_authz Check (authsvc/doors/envoy.py): what a route requires when
    its ``context_extensions`` say nothing, and the headers an accepted
    request carries upstream. Each header is set, never appended: a client
    cannot smuggle in its own ``x-authsvc-subject``."""

    default_audience: str | None = None
    subject_header: str = "x-authsvc-subject"
    scope_header: str = "x-authsvc-scope"
    client_id_header: str = "x-authsvc-client-id"
    session_header: str = "x-authsvc-session-id"
    #: Drop the client's Authorization header before the request goes upstream.
    remove_authorization: bool = False


@dataclass(frozen=True)
class Settings:
    listen: str = "127.0.0.1:50051"
    tls: TlsFiles | None = None
    http_listen: str | None = None
    database_url: str | None = None
    data_dir: Path = Path(".authsvc")
    kek: str | None = field(default=None, repr=False)
    policy: Policy = field(default_factory=Policy)
    argon2: Argon2Params = field(default_factory=Argon2Params)
    max_message_bytes: int = 64 * 1024
    shutdown_grace: float = 10.0
    #: Revocations are read from the log by cursor this often whatever happens;
    #: LISTEN/NOTIFY (when on) only makes them arrive sooner.
    reconcile_interval: float = 1.0
    key_reload_interval: float = 30.0
    use_notify: bool = True
    allow_dev_kek: bool = False
    log_level: str = "INFO"
    #: Replicas in this process group, each its own process on the same port
    #: (SO_REUSEPORT): one event loop tops out at about one core.
    workers: int = 1
    envoy: EnvoySettings = field(default_factory=EnvoySettings)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, serving: bool = True) -> Settings:
        """Read and check every setting. ``serving=False`` (the admin commands,
        which open no listener) skips the rule against plaintext listeners."""
        env = os.environ if env is None else env
        reader = _Reader(env)
        policy = Policy(
            issuer=reader.text("AUTHSVC_ISSUER", "authsvc"),
            self_audience=reader.text("AUTHSVC_AUDIENCE", "authsvc"),
            access_ttl=reader.integer("AUTHSVC_ACCESS_TOKEN_TTL", 300, 10, 24 * 3600),
            refresh_idle_ttl=reader.integer("AUTHSVC_REFRESH_TOKEN_TTL", 24 * 3600, 60, 365 * 24 * 3600),
            session_max_age=reader.integer("AUTHSVC_SESSION_MAX_AGE", 7 * 24 * 3600, 60, 365 * 24 * 3600),
            leeway=reader.integer("AUTHSVC_LEEWAY", 30, 0, 300),
            signing_alg=reader.choice("AUTHSVC_SIGNING_ALG", "EdDSA", SIGNING_ALGORITHMS),
            mfa_challenge_ttl=reader.integer("AUTHSVC_MFA_CHALLENGE_TTL", 300, 30, 3600),
            mfa_max_attempts=reader.integer("AUTHSVC_MFA_MAX_ATTEMPTS", 5, 1, 20),
            recent_auth=reader.integer("AUTHSVC_RECENT_AUTH", 900, 30, 24 * 3600),
            admin_scope=reader.text("AUTHSVC_ADMIN_SCOPE", "authsvc:admin"),
            refresh_max_count=reader.integer("AUTHSVC_REFRESH_MAX_COUNT", 10_000, 1, 10_000_000),
            refresh_min_interval=reader.integer("AUTHSVC_REFRESH_MIN_INTERVAL", 2, 0, 3600),
            reauth_age=reader.integer("AUTHSVC_REAUTH_AGE", 24 * 3600, 60, 365 * 24 * 3600),
            refresh_grace=reader.integer("AUTHSVC_REFRESH_GRACE", 0, 0, 60),
            encrypt_tokens=reader.flag("AUTHSVC_ENCRYPT_TOKENS"),
            bind_to_cert=not reader.flag("AUTHSVC_NO_CERT_BINDING"),
            key_rotation_interval=reader.integer("AUTHSVC_KEY_ROTATION_INTERVAL", 30 * 24 * 3600, 0, 10 * 366 * 86400),
            key_publish_lead=reader.integer("AUTHSVC_KEY_PUBLISH_LEAD", 3600, 0, 7 * 24 * 3600),
            key_reload_interval=reader.integer("AUTHSVC_KEY_RELOAD_INTERVAL", 30, 1, 3600),
            trust_domain=reader.text("AUTHSVC_TRUST_DOMAIN", env.get("AUTHSVC_ISSUER") or "authsvc"),
            txn_token_ttl=reader.integer("AUTHSVC_TXN_TOKEN_TTL", 60, 5, 600),
            account_limit=Limit(
                reader.integer("AUTHSVC_LOGIN_MAX_FAILURES", 5, 1, 1000),
                900.0,
                float(reader.integer("AUTHSVC_LOCKOUT_SECONDS", 30, 1, 3600)),
                3600.0,
            ),
            peer_limit=Limit(
                reader.integer("AUTHSVC_PEER_MAX_ATTEMPTS", 300, 1, 1_000_000),
                900.0,
                float(reader.integer("AUTHSVC_LOCKOUT_SECONDS", 30, 1, 3600)),
                3600.0,
            ),
        )
        settings = cls(
            listen=reader.listen("AUTHSVC_LISTEN", "127.0.0.1:50051"),
            database_url=env.get("AUTHSVC_DATABASE_URL") or None,
            data_dir=Path(env.get("AUTHSVC_DATA_DIR") or ".authsvc"),
            kek=env.get("AUTHSVC_KEK") or None,
            policy=policy,
            argon2=Argon2Params(
                time_cost=reader.integer("AUTHSVC_ARGON2_TIME_COST", 2, 1, 10),
                memory_kib=reader.integer("AUTHSVC_ARGON2_MEMORY_KIB", 19456, 8, 1 << 21),
                parallelism=reader.integer("AUTHSVC_ARGON2_PARALLELISM", 1, 1, 16),
            ),
            max_message_bytes=reader.integer("AUTHSVC_MAX_MESSAGE_BYTES", 64 * 1024, 16 * 1024, 4 << 20),
            shutdown_grace=float(reader.integer("AUTHSVC_SHUTDOWN_GRACE", 10, 0, 300)),
            reconcile_interval=reader.integer("AUTHSVC_RECONCILE_MS", 1000, 50, 60_000) / 1000,
            key_reload_interval=float(policy.key_reload_interval),
            use_notify=not reader.flag("AUTHSVC_NO_NOTIFY"),
            log_level=reader.choice("AUTHSVC_LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR")),
            workers=reader.integer("AUTHSVC_WORKERS", 1, 1, 64),
            envoy=reader.envoy(),
        )
        if settings.kek is not None:
            parse_kek(settings.kek)  # fail at start, not at the first secret
        tls = reader.tls()
        host = settings.listen.rpartition(":")[0]
        plaintext_ok = reader.flag("AUTHSVC_INSECURE_PLAINTEXT")
        if serving and tls is None and host not in _LOOPBACK and not plaintext_ok:
            # Tokens and passwords must never cross a network in clear.
            raise ConfigError(
                "AUTHSVC_LISTEN: a non-loopback address needs AUTHSVC_TLS_CERT and AUTHSVC_TLS_KEY "
                "(or AUTHSVC_INSECURE_PLAINTEXT=true behind a TLS-terminating proxy)"
            )
        grpc_port = int(settings.listen.rpartition(":")[2])
        if serving and settings.workers > 1 and grpc_port == 0:
            # Workers share one port; each picking its own would split the service.
            raise ConfigError("AUTHSVC_WORKERS: more than one worker needs a fixed port in AUTHSVC_LISTEN")
        http = reader.listen("AUTHSVC_HTTP_LISTEN", "") if env.get("AUTHSVC_HTTP_LISTEN") else None
        http_port = int(http.rpartition(":")[2]) if http else 0
        if serving and settings.workers > 1 and http_port:
            # Worker N serves the side port on its port + N.
            last = http_port + settings.workers - 1
            if last > 65535 or http_port <= grpc_port <= last:
                raise ConfigError(
                    f"AUTHSVC_HTTP_LISTEN: workers take ports {http_port}-{last}, "
                    "which must be valid and leave AUTHSVC_LISTEN's port alone"
                )
        return replace(settings, tls=tls, http_listen=http, allow_dev_kek=reader.flag("AUTHSVC_ALLOW_DEV_KEK"))

    def load_kek(self) -> Kek:
        """The configured KEK, or a development key kept in the data folder.
        The development key is for the embedded database only: next to a real
        database it would leave every sealed secret one file away from clear."""
        if self.kek is not None:
            return parse_kek(self.kek)
        if self.database_url and not self.allow_dev_kek:
            raise ConfigError(
                "AUTHSVC_KEK: required with AUTHSVC_DATABASE_URL "
                "(AUTHSVC_ALLOW_DEV_KEK=true uses a development key kept in AUTHSVC_DATA_DIR)"
            )
        path = self.data_dir / DEV_KEK_FILE
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write("dev:" + base64.urlsafe_b64encode(secrets.token_bytes(KEY_BYTES)).decode())
        log.warning(
            "AUTHSVC_KEK is not set: using the DEVELOPMENT key-encryption key in %s. "
            "Secrets at rest are only as safe as that file. Set AUTHSVC_KEK in production.",
            path,
        )
        return parse_kek(path.read_text().strip(), name=str(path))


def parse_kek(value: str, name: str = "AUTHSVC_KEK") -> Kek:
    """``id:base64key[,id:base64key...]``; the first is current, the rest can
    still open what they sealed (KEK rotation). Messages name a key by its
    position, never by text that might be the key itself (swapped fields)."""
    keys: dict[str, bytes] = {}
    for position, item in enumerate(value.split(","), start=1):
        kid, colon, b64 = item.strip().partition(":")
        if not colon or not kid or not _KEK_ID.fullmatch(kid):
            raise ConfigError(f"{name}: key {position}: expected id:base64key, id of at most 32 letters or digits")
        if not _B64.fullmatch(b64):
            raise ConfigError(f"{name}: key {position} is not base64")
        key = base64.urlsafe_b64decode(b64.replace("+", "-").replace("/", "_") + "=" * (-len(b64) % 4))
        if len(key) != KEY_BYTES:
            raise ConfigError(f"{name}: key {position} must be {KEY_BYTES} bytes")
        if kid in keys:
            raise ConfigError(f"{name}: key {position} repeats an id")
        keys[kid] = key
    return Kek(keys, current=next(iter(keys)))


class _Reader:
    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def text(self, name: str, default: str) -> str:
        value = self._env.get(name, default)
        if not value or len(value) > 256 or not value.isprintable():
            raise ConfigError(f"{name}: must be a non-empty printable string")
        return value

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        raw = self._env.get(name)
        if raw is None or raw == "":
            return default
        try:
            value = int(raw)
        except ValueError as exc:
            raise ConfigError(f"{name}: expected an integer, got {raw!r}") from exc
        if not low <= value <= high:
            raise ConfigError(f"{name}: must be between {low} and {high}, got {value}")
        return value

    def choice(self, name: str, default: str, allowed: tuple[str, ...]) -> str:
        value = self._env.get(name) or default
        if value not in allowed:
            raise ConfigError(f"{name}: must be one of {', '.join(allowed)}, got {value!r}")
        return value

    def flag(self, name: str) -> bool:
        raw = (self._env.get(name) or "false").lower()
        if raw not in ("true", "false", "1", "0", "yes", "no"):
            raise ConfigError(f"{name}: expected true or false, got {raw!r}")
        return raw in ("true", "1", "yes")

    def path(self, name: str) -> Path | None:
        raw = self._env.get(name)
        if not raw:
            return None
        path = Path(raw)
        if not path.is_file():
            raise ConfigError(f"{name}: no such file {raw!r}")
        return path

    def tls(self) -> TlsFiles | None:
        cert, key = self.path("AUTHSVC_TLS_CERT"), self.path("AUTHSVC_TLS_KEY")
        ca = self.path("AUTHSVC_TLS_CLIENT_CA")
        if (cert is None) != (key is None):
            raise ConfigError("AUTHSVC_TLS_CERT and AUTHSVC_TLS_KEY: set both or neither")
        if cert is None or key is None:
            if ca is not None:
                raise ConfigError("AUTHSVC_TLS_CLIENT_CA: needs AUTHSVC_TLS_CERT and AUTHSVC_TLS_KEY")
            return None
        return TlsFiles(cert, key, ca)

    def header(self, name: str, default: str) -> str:
        value = (self._env.get(name) or default).lower()  # HTTP/2 field names are lower case
        if not _HEADER_NAME.fullmatch(value) or value in _RESERVED_HEADERS:
            raise ConfigError(f"{name}: must be an HTTP header name of at most 64 characters, not {value!r}")
        return value

    def envoy(self) -> EnvoySettings:
        audience = self._env.get("AUTHSVC_ENVOY_DEFAULT_AUDIENCE")
        settings = EnvoySettings(
            default_audience=self.text("AUTHSVC_ENVOY_DEFAULT_AUDIENCE", "") if audience else None,
            subject_header=self.header("AUTHSVC_ENVOY_SUBJECT_HEADER", "x-authsvc-subject"),
            scope_header=self.header("AUTHSVC_ENVOY_SCOPE_HEADER", "x-authsvc-scope"),
            client_id_header=self.header("AUTHSVC_ENVOY_CLIENT_ID_HEADER", "x-authsvc-client-id"),
            session_header=self.header("AUTHSVC_ENVOY_SESSION_HEADER", "x-authsvc-session-id"),
            remove_authorization=self.flag("AUTHSVC_ENVOY_REMOVE_AUTHORIZATION"),
        )
        names = (settings.subject_header, settings.scope_header, settings.client_id_header, settings.session_header)
        if len(set(names)) != len(names):
            raise ConfigError("AUTHSVC_ENVOY_*_HEADER: the four upstream headers must have distinct names")
        return settings

    def listen(self, name: str, default: str) -> str:
        value = self._env.get(name) or default
        host, colon, port = value.rpartition(":")
        if not colon or not host or not (port.isascii() and port.isdigit()) or not 0 <= int(port) <= 65535:
            raise ConfigError(f"{name}: expected host:port, got {value!r}")
        return value
