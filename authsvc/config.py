"""Settings: one frozen object read from AUTHSVC_* variables, validated once.

A bad value stops start-up with an error that names the variable (and never
echoes a secret).
"""

from __future__ import annotations

import base64
import difflib
import logging
import os
import re
import secrets
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from authsvc.domain.identity.passwords import Argon2Params
from authsvc.domain.identity.throttle import Limit
from authsvc.domain.policy import Policy
from authsvc.domain.tokens.kek import KEY_BYTES, Kek
from authsvc_client import SIGNING_ALGORITHMS

log = logging.getLogger(__name__)

DEV_KEK_FILE = "dev-kek"
#: The data folder's default name, looked for from the working directory up.
DATA_DIR_NAME = ".authsvc"
#: What an integer setting counts, for its error message.
SECONDS, MILLISECONDS, DAYS, COUNT, KIB, BYTES = "seconds", "milliseconds", "days", "a count", "KiB", "bytes"
#: Settings whose value may instead come from the file named by NAME_FILE (the
#: convention of container images: a mounted secret, never in the environment).
FILE_SETTINGS = ("AUTHSVC_KEK", "AUTHSVC_DATABASE_URL", "AUTHSVC_LISTEN_DATABASE_URL")
#: Variables of the test suite, not of the server: never warned about.
_NOT_SETTINGS = ("AUTHSVC_TEST_",)
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
    #: Where /metrics listens apart from the public side port (None: on it).
    metrics_listen: str | None = None
    #: The side port's address as its clients see it (RFC 8414 metadata);
    #: None: derived from the address it listens on.
    http_public_url: str | None = None
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
    #: "transaction" when the URL reaches Postgres through PgBouncer in
    #: transaction pooling mode: no prepared-statement cache, and LISTEN only
    #: over ``listen_database_url`` (else the reconcile alone).
    database_pooling: str = "session"
    #: A direct (session) URL for LISTEN; by default the database URL itself.
    listen_database_url: str | None = field(default=None, repr=False)
    #: How long Verify keeps answering from memory after the revocation log
    #: was last read (a failover, an outage), before it fails closed.
    verify_max_staleness: float = 10.0
    allow_dev_kek: bool = False
    log_level: str = "INFO"
    #: "text" (one readable line) or "json" (one JSON object a line, for log pipelines).
    log_format: str = "text"
    #: Audit rows older than this are pruned (the chain keeps a checkpoint); 0 keeps them all.
    audit_retention_days: int = 365
    #: Replicas in this process group, each its own process on the same port
    #: (SO_REUSEPORT): one event loop tops out at about one core.
    workers: int = 1
    envoy: EnvoySettings = field(default_factory=EnvoySettings)
    #: gRPC server reflection (grpcurl without proto files); off for locked-down deployments.
    reflection: bool = True
    #: Warnings about the environment (unknown AUTHSVC_* names), for the CLI to log once.
    warnings: tuple[str, ...] = field(default=(), compare=False, repr=False)
    #: Every setting as read: (name, value shown with secrets masked, where it came from).
    effective: tuple[tuple[str, str, str], ...] = field(default=(), compare=False, repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, serving: bool = True) -> Settings:
        """Read and check every setting. ``serving=False`` (the admin commands,
        which open no listener) skips the rules that only a server needs: no
        plaintext off loopback, a KEK beside a database URL.

        Every name read here is a known setting: the unknown-name warning and
        ``authsvc config`` are derived from these reads, so a setting added
        below is known without being listed anywhere else."""
        raw_env = os.environ if env is None else env
        env = seen = _Recorded(raw_env)
        reader = _Reader(seen)
        policy = Policy(
            issuer=reader.text("AUTHSVC_ISSUER", "authsvc"),
            self_audience=reader.text("AUTHSVC_AUDIENCE", "authsvc"),
            access_ttl=reader.integer("AUTHSVC_ACCESS_TOKEN_TTL", 300, 10, 24 * 3600, SECONDS),
            refresh_idle_ttl=reader.integer("AUTHSVC_REFRESH_TOKEN_TTL", 24 * 3600, 60, 365 * 24 * 3600, SECONDS),
            session_max_age=reader.integer("AUTHSVC_SESSION_MAX_AGE", 7 * 24 * 3600, 60, 365 * 24 * 3600, SECONDS),
            leeway=reader.integer("AUTHSVC_LEEWAY", 30, 0, 300, SECONDS),
            signing_alg=reader.choice("AUTHSVC_SIGNING_ALG", "EdDSA", SIGNING_ALGORITHMS),
            mfa_challenge_ttl=reader.integer("AUTHSVC_MFA_CHALLENGE_TTL", 300, 30, 3600, SECONDS),
            mfa_max_attempts=reader.integer("AUTHSVC_MFA_MAX_ATTEMPTS", 5, 1, 20, COUNT),
            recent_auth=reader.integer("AUTHSVC_RECENT_AUTH", 900, 30, 24 * 3600, SECONDS),
            admin_scope=reader.text("AUTHSVC_ADMIN_SCOPE", "authsvc:admin"),
            admin_recent_auth=reader.integer("AUTHSVC_ADMIN_RECENT_AUTH", 900, 30, 24 * 3600, SECONDS),
            client_secret_overlap=reader.integer(
                "AUTHSVC_CLIENT_SECRET_OVERLAP", 24 * 3600, 0, 30 * 24 * 3600, SECONDS
            ),
            refresh_max_count=reader.integer("AUTHSVC_REFRESH_MAX_COUNT", 10_000, 1, 10_000_000, COUNT),
            refresh_min_interval=reader.integer("AUTHSVC_REFRESH_MIN_INTERVAL", 2, 0, 3600, SECONDS),
            reauth_age=reader.integer("AUTHSVC_REAUTH_AGE", 24 * 3600, 60, 365 * 24 * 3600, SECONDS),
            refresh_grace=reader.integer("AUTHSVC_REFRESH_GRACE", 0, 0, 60, SECONDS),
            encrypt_tokens=reader.flag("AUTHSVC_ENCRYPT_TOKENS"),
            require_encrypted=reader.flag("AUTHSVC_REQUIRE_ENCRYPTED"),
            bind_to_cert=not reader.flag("AUTHSVC_NO_CERT_BINDING"),
            key_rotation_interval=reader.integer(
                "AUTHSVC_KEY_ROTATION_INTERVAL", 30 * 24 * 3600, 0, 10 * 366 * 86400, SECONDS
            ),
            key_publish_lead=reader.integer("AUTHSVC_KEY_PUBLISH_LEAD", 3600, 0, 7 * 24 * 3600, SECONDS),
            key_reload_interval=reader.integer("AUTHSVC_KEY_RELOAD_INTERVAL", 30, 1, 3600, SECONDS),
            trust_domain=reader.text("AUTHSVC_TRUST_DOMAIN", env.get("AUTHSVC_ISSUER") or "authsvc"),
            txn_token_ttl=reader.integer("AUTHSVC_TXN_TOKEN_TTL", 60, 5, 600, SECONDS),
            account_limit=Limit(
                reader.integer("AUTHSVC_LOGIN_MAX_FAILURES", 5, 1, 1000, COUNT),
                900.0,
                float(reader.integer("AUTHSVC_LOCKOUT_SECONDS", 30, 1, 3600, SECONDS)),
                3600.0,
            ),
            peer_limit=Limit(
                reader.integer("AUTHSVC_PEER_MAX_ATTEMPTS", 300, 1, 1_000_000, COUNT),
                900.0,
                float(reader.integer("AUTHSVC_LOCKOUT_SECONDS", 30, 1, 3600, SECONDS)),
                3600.0,
            ),
        )
        if policy.require_encrypted and not policy.encrypt_tokens:
            raise ConfigError("AUTHSVC_REQUIRE_ENCRYPTED=true needs AUTHSVC_ENCRYPT_TOKENS=true (else no token passes)")
        settings = cls(
            listen=reader.listen("AUTHSVC_LISTEN", "127.0.0.1:50051"),
            database_url=reader.secret("AUTHSVC_DATABASE_URL", mask=mask_url),
            data_dir=reader.data_dir("AUTHSVC_DATA_DIR"),
            kek=reader.secret("AUTHSVC_KEK", mask=mask_kek),
            policy=policy,
            argon2=Argon2Params(
                time_cost=reader.integer("AUTHSVC_ARGON2_TIME_COST", 2, 1, 10, COUNT),
                memory_kib=reader.integer("AUTHSVC_ARGON2_MEMORY_KIB", 19456, 8, 1 << 21, KIB),
                parallelism=reader.integer("AUTHSVC_ARGON2_PARALLELISM", 1, 1, 16, COUNT),
            ),
            max_message_bytes=reader.integer("AUTHSVC_MAX_MESSAGE_BYTES", 64 * 1024, 16 * 1024, 4 << 20, BYTES),
            shutdown_grace=float(reader.integer("AUTHSVC_SHUTDOWN_GRACE", 10, 0, 300, SECONDS)),
            reconcile_interval=reader.integer("AUTHSVC_RECONCILE_MS", 1000, 50, 60_000, MILLISECONDS) / 1000,
            key_reload_interval=float(policy.key_reload_interval),
            use_notify=not reader.flag("AUTHSVC_NO_NOTIFY"),
            database_pooling=reader.choice("AUTHSVC_DATABASE_POOLING", "session", ("session", "transaction")),
            listen_database_url=reader.secret("AUTHSVC_LISTEN_DATABASE_URL", mask=mask_url),
            verify_max_staleness=float(reader.integer("AUTHSVC_VERIFY_MAX_STALENESS", 10, 0, 300, SECONDS)),
            log_level=reader.choice("AUTHSVC_LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR")),
            log_format=reader.choice("AUTHSVC_LOG_FORMAT", "text", ("text", "json")),
            audit_retention_days=reader.integer("AUTHSVC_AUDIT_RETENTION_DAYS", 365, 0, 100 * 366, DAYS),
            workers=reader.integer("AUTHSVC_WORKERS", 1, 1, 64, COUNT),
            envoy=reader.envoy(),
            reflection=reader.flag("AUTHSVC_REFLECTION", default=True),
        )
        if settings.kek is not None:
            parse_kek(settings.kek)  # fail at start, not at the first secret
        allow_dev_kek = reader.flag("AUTHSVC_ALLOW_DEV_KEK")
        if serving and settings.database_url and settings.kek is None and not allow_dev_kek:
            # Refused before anything touches the database (no migration runs).
            raise ConfigError(_KEK_REQUIRED)
        tls = reader.tls()
        plaintext_ok = reader.flag("AUTHSVC_INSECURE_PLAINTEXT")
        if serving:
            refuse_plaintext("AUTHSVC_LISTEN", settings.listen, tls, plaintext_ok)
        grpc_port = int(settings.listen.rpartition(":")[2])
        if serving and settings.workers > 1 and grpc_port == 0:
            # Workers share one port; each picking its own would split the service.
            raise ConfigError("AUTHSVC_WORKERS: more than one worker needs a fixed port in AUTHSVC_LISTEN")
        http = reader.optional_listen("AUTHSVC_HTTP_LISTEN")
        metrics = reader.optional_listen("AUTHSVC_METRICS_LISTEN")
        if metrics and not http:
            raise ConfigError("AUTHSVC_METRICS_LISTEN: needs AUTHSVC_HTTP_LISTEN (it moves /metrics off that port)")
        public_url = reader.url("AUTHSVC_HTTP_PUBLIC_URL")
        for name, value in (("AUTHSVC_HTTP_LISTEN", http), ("AUTHSVC_METRICS_LISTEN", metrics)):
            if serving and value:
                # The side port carries client secrets and tokens: the same rule as gRPC's.
                refuse_plaintext(name, value, tls, plaintext_ok)
            port = int(value.rpartition(":")[2]) if value else 0
            if serving and settings.workers > 1 and port:
                # Worker N serves the side ports on their port + N.
                last = port + settings.workers - 1
                if last > 65535 or port <= grpc_port <= last:
                    raise ConfigError(
                        f"{name}: workers take ports {port}-{last}, "
                        "which must be valid and leave AUTHSVC_LISTEN's port alone"
                    )
        return replace(
            settings, tls=tls, http_listen=http, metrics_listen=metrics, http_public_url=public_url,
            allow_dev_kek=allow_dev_kek,
            warnings=tuple(unknown_names(raw_env, seen.names)), effective=reader.all_effective(seen.names),
        )  # fmt: skip

    def notify_url(self, database_url: str) -> str | None:
        """Where LISTEN connects, or None for the reconcile alone: a
        transaction-pooling PgBouncer cannot hold a LISTEN (no session)."""
        if not self.use_notify:
            return None
        if self.listen_database_url:
            return self.listen_database_url
        return database_url if self.database_pooling == "session" else None

    def load_kek(self) -> Kek:
        """The configured KEK, or a development key kept in the data folder.
        The development key is for the embedded database only: next to a real
        database it would leave every sealed secret one file away from clear."""
        if self.kek is not None:
            return parse_kek(self.kek)
        if self.database_url and not self.allow_dev_kek:
            raise ConfigError(_KEK_REQUIRED)
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


def refuse_plaintext(name: str, listen: str, tls: TlsFiles | None, plaintext_ok: bool) -> None:
    """Tokens, passwords and client secrets must never cross a network in
    clear: a listener off loopback needs TLS, or a declared TLS-terminating
    proxy in front (AUTHSVC_INSECURE_PLAINTEXT)."""
    if tls is None and listen.rpartition(":")[0] not in _LOOPBACK and not plaintext_ok:
        raise ConfigError(
            f"{name}: a non-loopback address needs AUTHSVC_TLS_CERT and AUTHSVC_TLS_KEY "
            "(or AUTHSVC_INSECURE_PLAINTEXT=true behind a TLS-terminating proxy)"
        )


_KEK_REQUIRED = (
    "AUTHSVC_KEK: required with AUTHSVC_DATABASE_URL: set it (or AUTHSVC_KEK_FILE) to id:base64-32-bytes "
    "(AUTHSVC_ALLOW_DEV_KEK=true uses a development key kept in AUTHSVC_DATA_DIR, never in production)"
)


def unknown_names(env: Mapping[str, str], known: set[str]) -> Iterator[str]:
    """A warning for each AUTHSVC_* variable that no setting reads, with the
    closest known name: a misspelt setting must not be silently ignored."""
    for name in sorted(env):
        if not name.startswith("AUTHSVC_") or name in known or name.startswith(_NOT_SETTINGS):
            continue
        # Compared without the prefix every name shares, which would make any two look alike.
        tails = {k.removeprefix("AUTHSVC_"): k for k in known if k.startswith("AUTHSVC_")}
        close = difflib.get_close_matches(name.removeprefix("AUTHSVC_"), sorted(tails), n=1, cutoff=0.6)
        hint = f" (did you mean {tails[close[0]]}?)" if close else ""
        yield f"{name} is not an authsvc setting{hint}; it is ignored"


def known_settings() -> frozenset[str]:
    """Every AUTHSVC_* name that ``Settings.from_env`` reads."""
    seen = _Recorded({})
    Settings.from_env(seen, serving=False)
    return frozenset(name for name in seen.names if name.startswith("AUTHSVC_"))


def mask_url(url: str) -> str:
    """A database URL with its password replaced, for display."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rpartition("@")
    user = netloc[0].partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:****@{netloc[2]}"))


def mask_kek(value: str) -> str:
    """The key ids only: which key seals, never a key."""
    ids = [item.strip().partition(":")[0] for item in value.split(",")]
    return ",".join(f"{kid}:****" for kid in ids)


def find_data_dir(start: Path) -> Path:
    """The nearest existing ``.authsvc`` folder at or above ``start``, else ``start/.authsvc``."""
    start = start.resolve()
    for folder in (start, *start.parents):
        candidate = folder / DATA_DIR_NAME
        if candidate.is_dir():
            return candidate
    return start / DATA_DIR_NAME


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


class _Recorded(Mapping[str, str]):
    """The environment, remembering every name asked for: those are the known
    settings (whatever reads them, the reader or a direct ``get``)."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env
        self.names: set[str] = set()

    def __getitem__(self, name: str) -> str:
        self.names.add(name)
        return self._env[name]

    def __contains__(self, name: object) -> bool:
        if isinstance(name, str):
            self.names.add(name)
        return name in self._env

    def __iter__(self) -> Iterator[str]:
        return iter(self._env)

    def __len__(self) -> int:
        return len(self._env)


class _Reader:
    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env
        #: (name, shown value, source) of every setting, in the order read.
        self.effective: list[tuple[str, str, str]] = []
        self._shown: set[str] = set()

    def _note(self, name: str, shown: str, explicit: bool) -> None:
        if name not in self._shown:  # AUTHSVC_LOCKOUT_SECONDS is read twice
            self._shown.add(name)
            self.effective.append((name, shown, "environment" if explicit else "default"))

    def all_effective(self, names: set[str]) -> tuple[tuple[str, str, str], ...]:
        """What was noted, plus any setting read without a note (a direct
        ``get``): shown only as set or not, since it might be a secret."""
        rest = sorted(n for n in names - self._shown if n.startswith("AUTHSVC_") and not n.endswith("_FILE"))
        unnoted = [(n, "(set, not shown)", "environment") if self._env.get(n) else (n, "unset", "default")
                   for n in rest]  # fmt: skip
        return (*self.effective, *unnoted)

    def text(self, name: str, default: str) -> str:
        value = self._env.get(name, default)
        if not value or len(value) > 256 or not value.isprintable():
            raise ConfigError(f"{name}: must be a non-empty printable string")
        self._note(name, value, name in self._env)
        return value

    def integer(self, name: str, default: int, low: int, high: int, unit: str = "") -> int:
        raw = self._env.get(name)
        if raw is None or raw == "":
            self._note(name, str(default), False)
            return default
        what = f"{unit}, a whole number" if unit else "a whole number"
        try:
            value = int(raw)
        except ValueError as exc:
            raise ConfigError(f"{name}: expected {what} (such as {default}), got {raw!r}") from exc
        if not low <= value <= high:
            suffix = f" {unit}" if unit and unit != COUNT else ""
            raise ConfigError(f"{name}: must be between {low} and {high}{suffix}, got {value}")
        self._note(name, str(value), True)
        return value

    def choice(self, name: str, default: str, allowed: tuple[str, ...]) -> str:
        value = self._env.get(name) or default
        if value not in allowed:
            raise ConfigError(f"{name}: must be one of {', '.join(allowed)}, got {value!r}")
        self._note(name, value, bool(self._env.get(name)))
        return value

    def flag(self, name: str, default: bool = False) -> bool:
        raw = (self._env.get(name) or str(default)).lower()
        if raw not in ("true", "false", "1", "0", "yes", "no"):
            raise ConfigError(f"{name}: expected true or false, got {raw!r}")
        value = raw in ("true", "1", "yes")
        self._note(name, str(value).lower(), bool(self._env.get(name)))
        return value

    def path(self, name: str) -> Path | None:
        raw = self._env.get(name)
        if not raw:
            self._note(name, "unset", False)
            return None
        path = Path(raw)
        if not path.is_file():
            raise ConfigError(f"{name}: no such file {raw!r}")
        self._note(name, raw, True)
        return path

    def secret(self, name: str, mask: Callable[[str], str]) -> str | None:
        """NAME, or the contents of the file named by NAME_FILE (one trailing
        newline dropped). Both at once is refused: which would win is a guess."""
        value, from_file = self._env.get(name) or None, self._env.get(name + "_FILE") or None
        if value is not None and from_file is not None:
            raise ConfigError(f"{name} and {name}_FILE: set one, not both")
        if from_file is None:
            self._note(name, "unset" if value is None else mask(value), value is not None)
            return value
        try:
            text = Path(from_file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise ConfigError(f"{name}_FILE: cannot read {from_file!r} ({reason})") from exc
        text = text.removesuffix("\n").removesuffix("\r")
        if not text:
            raise ConfigError(f"{name}_FILE: {from_file!r} is empty")
        self.effective.append((name, mask(text), f"file {from_file}"))
        self._shown.add(name)
        return text

    def data_dir(self, name: str) -> Path:
        """An absolute folder, resolved once. Unset: the nearest ``.authsvc``
        from the working directory up (as git finds ``.git``), so a command run
        anywhere in a checkout finds the server's; none found: ``./.authsvc``."""
        raw = self._env.get(name)
        if raw:
            path = Path(raw).expanduser().resolve()
            self._note(name, str(path), True)
            return path
        path = find_data_dir(Path.cwd())
        self._note(name, str(path), False)
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

    def url(self, name: str) -> str | None:
        raw = self._env.get(name)
        if not raw:
            self._note(name, "unset (derived)", False)
            return None
        scheme, sep, rest = raw.partition("://")
        if scheme not in ("http", "https") or not sep or not rest or any(c in raw for c in "?# ") or len(raw) > 256:
            raise ConfigError(f"{name}: expected an http(s) URL without query or fragment, got {raw!r}")
        self._note(name, raw, True)
        return raw.rstrip("/")

    def header(self, name: str, default: str) -> str:
        value = (self._env.get(name) or default).lower()  # HTTP/2 field names are lower case
        if not _HEADER_NAME.fullmatch(value) or value in _RESERVED_HEADERS:
            raise ConfigError(f"{name}: must be an HTTP header name of at most 64 characters, not {value!r}")
        self._note(name, value, bool(self._env.get(name)))
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
        self._note(name, value, bool(self._env.get(name)))
        return value

    def optional_listen(self, name: str) -> str | None:
        if not self._env.get(name):
            self._note(name, "unset (off)", False)
            return None
        return self.listen(name, "")
