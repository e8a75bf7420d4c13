"""What an HTTP request says: its form (RFC 6749 appendix B), the client's
authentication (RFC 6749 section 2.3, RFC 8705 section 2), and the caller."""

from __future__ import annotations

import base64
import binascii
import ssl
import urllib.parse
from dataclasses import dataclass

from aiohttp import web

from authsvc.domain.models import CallInfo
from authsvc.doors import peer_cert
from authsvc.doors.http_status import CLIENT_CHALLENGE, OAuthError, bad_request

FORM_TYPE = "application/x-www-form-urlencoded"
#: Largest form body accepted: room for the largest token (8 KiB) and more.
MAX_FORM_BYTES = 32 * 1024
MAX_FIELDS = 64
_MAX_USER_AGENT = 256
#: Parameters that may repeat: RFC 8707 section 2 (resource), RFC 8693 (audience).
_REPEATABLE = frozenset({"audience", "resource"})


class HttpFailure(Exception):
    """Stop the request with this answer."""

    def __init__(self, error: OAuthError) -> None:
        super().__init__(error.description)
        self.error = error


def invalid_client(description: str = "invalid credentials") -> HttpFailure:
    return HttpFailure(OAuthError(401, "invalid_client", description, {"WWW-Authenticate": CLIENT_CHALLENGE}))


class Form:
    """A parsed form: each parameter once, except those RFCs let repeat."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self._values: dict[str, list[str]] = {}
        for name, value in pairs:
            if value == "":
                continue  # RFC 6749 section 3.1: an empty parameter is an omitted one
            seen = self._values.setdefault(name, [])
            if seen and name not in _REPEATABLE:
                raise HttpFailure(bad_request(f"parameter {name[:40]!r} given more than once"))
            seen.append(value)

    def one(self, name: str) -> str:
        return self._values.get(name, [""])[0]

    def many(self, name: str) -> list[str]:
        return list(self._values.get(name, ()))

    def __contains__(self, name: object) -> bool:
        return name in self._values

    def audiences(self) -> list[str]:
        """``audience`` and RFC 8707's ``resource``, taken as the same."""
        return [*self.many("audience"), *self.many("resource")]

    def scopes(self) -> list[str]:
        """``scope``: space-separated (RFC 6749 section 3.3)."""
        return [s for s in self.one("scope").split(" ") if s]


async def read_form(request: web.Request) -> Form:
    if request.content_type != FORM_TYPE:
        raise HttpFailure(bad_request(f"expected Content-Type: {FORM_TYPE}"))
    try:
        body = await request.read()  # refused past the application's client_max_size
    except web.HTTPRequestEntityTooLarge:
        raise HttpFailure(bad_request(f"request body larger than {MAX_FORM_BYTES} bytes", status=413)) from None
    try:
        pairs = urllib.parse.parse_qsl(
            body.decode("utf-8"), keep_blank_values=True, max_num_fields=MAX_FIELDS, errors="strict"
        )
    except UnicodeDecodeError:
        raise HttpFailure(bad_request("the form is not UTF-8")) from None
    except ValueError:
        raise HttpFailure(bad_request(f"more than {MAX_FIELDS} form fields")) from None
    return Form(pairs)


@dataclass(frozen=True, slots=True)
class ClientAuth:
    """How the client authenticated; ``method`` is an RFC 8414 auth method name."""

    client_id: str = ""
    secret: str = ""
    method: str = "none"


def client_auth(request: web.Request, form: Form, call: CallInfo) -> ClientAuth:
    """The client's credentials, by exactly one method (RFC 6749 section 2.3)."""
    header = request.headers.get("Authorization")
    if header is not None:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            raise invalid_client()
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise invalid_client() from None
        raw_id, colon, raw_secret = decoded.partition(":")
        if not colon:
            raise invalid_client()
        # RFC 6749 section 2.3.1: both are form-urlencoded before the base64.
        client_id, secret = urllib.parse.unquote_plus(raw_id), urllib.parse.unquote_plus(raw_secret)
        if "client_secret" in form:
            raise HttpFailure(bad_request("use one client authentication method, not two"))
        if "client_id" in form and form.one("client_id") != client_id:
            raise HttpFailure(bad_request("client_id differs from the Authorization header"))
        return ClientAuth(client_id, secret, "client_secret_basic")
    client_id, secret = form.one("client_id"), form.one("client_secret")
    if secret:
        return ClientAuth(client_id, secret, "client_secret_post")
    if client_id and call.cert_thumbprint:
        return ClientAuth(client_id, "", "tls_client_auth")
    return ClientAuth(client_id, "", "none")


def call_info(request: web.Request) -> CallInfo:
    """The caller as the gRPC door describes one: "ipv4:ADDR:PORT", its user
    agent, and its verified client certificate when it sent one."""
    transport = request.transport
    peername = transport.get_extra_info("peername") if transport is not None else None
    peer = ""
    if isinstance(peername, tuple) and len(peername) >= 2:
        host, port = peername[0], peername[1]
        peer = f"ipv6:[{host}]:{port}" if ":" in str(host) else f"ipv4:{host}:{port}"
    tls = transport.get_extra_info("ssl_object") if transport is not None else None
    der = tls.getpeercert(binary_form=True) if isinstance(tls, ssl.SSLObject) else None
    thumbprint, san_uris = peer_cert.from_der(der)
    return CallInfo(
        peer=peer,
        user_agent=request.headers.get("User-Agent", "")[:_MAX_USER_AGENT],
        cert_thumbprint=thumbprint,
        cert_san_uris=san_uris,
    )
