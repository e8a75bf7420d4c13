"""envoy.service.auth.v3.Authorization/Check: Envoy's external authorization.

Envoy asks before it forwards a request; the answer comes from the same
domain call as Verify's (``deps.live.verify``), so every token rule applies,
revocation included, and a stale replica fails closed (StoreUnavailable ->
UNAVAILABLE, which Envoy with ``failure_mode_allow: false`` turns into a
denial with its ``status_on_error``; a replica that is merely stale thus looks
to Envoy like one that is down, its retry policy and outlier detection apply).

Per route, Envoy's ``context_extensions`` say what a token must carry:
``audience`` (else AUTHSVC_ENVOY_DEFAULT_AUDIENCE), ``scope`` (space-separated,
all required), ``max_auth_age`` (seconds), ``max_delegation_depth`` (actors a
delegated token may name in ``act``; ``0``: none) and ``require_encrypted`` (``true``:
only a nested JWT; the deployment's and the audience's own rule apply anyway). A route that says something
unreadable is a broken request (INVALID_ARGUMENT, so Envoy denies it), never
a guess.

Answers follow RFC 6750 section 3: no token, 401 with a bare challenge; a bad
one, 401 ``error="invalid_token"``; too few scopes, 403
``error="insufficient_scope"``; a login too old for the route, 401
``error="insufficient_user_authentication"`` with ``max_age`` (RFC 9470
section 3, the step-up challenge a client can act on). The body is empty.
"""

from __future__ import annotations

from collections import OrderedDict
from urllib.parse import unquote_to_bytes

from envoy.config.core.v3 import base_pb2
from envoy.service.auth.v3 import attribute_context_pb2 as attrs
from envoy.service.auth.v3 import external_auth_pb2 as ext
from envoy.type.v3 import http_status_pb2
from google.rpc import code_pb2, status_pb2

from authsvc.config import EnvoySettings
from authsvc.domain.deps import Deps
from authsvc.doors import convert
from authsvc.doors.convert import Context
from authsvc.doors.grpc_status import rpc
from authsvc.errors import InvalidArgument
from authsvc.metrics import Metrics
from authsvc_client import AccessClaims, Reason, Requirements, TokenRejected

SERVICE = ext.DESCRIPTOR.services_by_name["Authorization"]
MESSAGES = ext  # the generated module, for registry.add_service
_OVERWRITE = base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD
#: Above this a max_delegation_depth is a typo (a token names at most 16 actors).
_MAX_DELEGATION_DEPTH = 64
#: Above this a max_auth_age is a typo, not a policy (ten years).
_MAX_AUTH_AGE = 10 * 366 * 86400
#: URL-encoded PEM of one certificate; a chain or junk past this is refused.
_MAX_CERTIFICATE = 16 * 1024
_FORBIDDEN = frozenset({Reason.MISSING_SCOPE})
REQUIREMENTS_CACHE_SIZE = 256
#: OK answers kept, each about 200 bytes beside its token.
ANSWER_CACHE_SIZE = 4096


class Authorizer:
    """The Check door: parse Envoy's request, call Verify's domain code, answer."""

    def __init__(self, deps: Deps, settings: EnvoySettings, metrics: Metrics | None = None) -> None:
        self._deps = deps
        self._settings = settings
        self._metrics = metrics or Metrics()
        # A route's extensions and the certificate -> checked Requirements:
        # Envoy asks with the same few over and over.
        self._requirements: dict[tuple[str, str, str, str, str, str], Requirements] = {}
        # Token -> its OK answer, serialized: the answer depends on the token's
        # claims alone, and building it is most of a Check's own cost (about
        # 40 us). Every rule still runs on every call; only the wrapping is kept.
        self._answers: OrderedDict[str, bytes] = OrderedDict()

    @rpc
    async def Check(self, request: ext.CheckRequest, context: Context) -> ext.CheckResponse | bytes:
        requirements = self._route(request)
        header = authorization(request.attributes.request.http)
        token = convert.bearer_token(header) if header is not None else None
        if not token:  # no credentials at all: a bare challenge (RFC 6750 section 3.1)
            return denied(401, realm(requirements))
        try:
            claims = self._deps.live.verify(token, requirements)
        except TokenRejected as rejected:
            status = 403 if rejected.reason in _FORBIDDEN else 401
            return denied(status, challenge(rejected.reason, requirements))
        return self._allowed(token, claims)

    def _route(self, request: ext.CheckRequest) -> Requirements:
        attributes = request.attributes
        extensions = attributes.context_extensions
        asked = (
            extensions.get("audience", ""), extensions.get("scope", ""), extensions.get("max_auth_age", ""),
            extensions.get("require_encrypted", ""), extensions.get("max_delegation_depth", ""),
            attributes.source.certificate,
        )  # fmt: skip
        requirements = self._requirements.get(asked)
        if requirements is None:  # checked once per distinct route and certificate
            requirements = route_requirements(request, self._settings.default_audience)
            if len(self._requirements) >= REQUIREMENTS_CACHE_SIZE:
                self._requirements.clear()
            self._requirements[asked] = requirements
        return requirements

    def _allowed(self, token: str, claims: AccessClaims) -> bytes:
        answer = self._answers.get(token)
        if answer is None:  # only tokens that passed every rule are kept: junk cannot take the room
            answer = allowed(claims, self._settings).SerializeToString()
            if len(self._answers) >= ANSWER_CACHE_SIZE:
                self._answers.popitem(last=False)  # one out, one in: no stalls
            self._answers[token] = answer
        return answer


def authorization(http: attrs.AttributeContext.HttpRequest) -> str | None:
    """The Authorization header: in ``headers``, or in ``header_map`` when
    Envoy is set to ``encode_raw_headers`` (names are lower case in both)."""
    value = http.headers.get("authorization")
    if value is not None:
        return str(value)
    for header in http.header_map.headers:
        if header.key == "authorization":
            return str(header.raw_value.decode("utf-8", "replace") or header.value)
    return None


def route_requirements(request: ext.CheckRequest, default_audience: str | None) -> Requirements:
    """What this route requires, from the check's context_extensions and the
    certificate Envoy saw (when it terminated mTLS)."""
    extensions = request.attributes.context_extensions
    audience = extensions.get("audience") or default_audience or ""
    if not audience:
        raise InvalidArgument("audience is required (context_extensions or AUTHSVC_ENVOY_DEFAULT_AUDIENCE)")
    scopes = tuple(extensions.get("scope", "").split())
    max_age = extensions.get("max_auth_age", "0")
    if not (max_age.isascii() and max_age.isdigit() and int(max_age) <= _MAX_AUTH_AGE):
        raise InvalidArgument("max_auth_age must be a number of seconds")
    encrypted = extensions.get("require_encrypted", "false")
    if encrypted not in ("true", "false"):
        raise InvalidArgument("require_encrypted must be true or false")
    depth = extensions.get("max_delegation_depth", "")
    if depth and not (depth.isascii() and depth.isdigit() and int(depth) <= _MAX_DELEGATION_DEPTH):
        raise InvalidArgument("max_delegation_depth must be a number of actors")
    thumbprint = peer_thumbprint(request.attributes.source.certificate)
    return convert.requirements(
        audience, scopes, thumbprint, int(max_age), encrypted == "true", int(depth) if depth else None
    )


def peer_thumbprint(certificate: str) -> str:
    """The RFC 8705 thumbprint of the URL-encoded PEM Envoy passes in
    ``attributes.source.certificate``; empty without one."""
    if not certificate:
        return ""
    if len(certificate) > _MAX_CERTIFICATE:
        raise InvalidArgument("source certificate is too long")
    try:
        return convert.certificate_identity(unquote_to_bytes(certificate))[0]
    except ValueError:
        raise InvalidArgument("source certificate is malformed") from None


def realm(requirements: Requirements) -> str:
    """The bare challenge (RFC 6750 section 3): the realm is the audience a
    token for this route must carry."""
    return f"Bearer realm={_quoted(requirements.audience)}"


def challenge(reason: Reason, requirements: Requirements) -> str:
    """The WWW-Authenticate value for a refused token: the error code and
    what the route needs, never why the token failed beyond that."""
    realm_ = realm(requirements)
    if reason is Reason.MISSING_SCOPE:
        return f'{realm_}, error="insufficient_scope", scope={_quoted(" ".join(requirements.scopes))}'
    if reason is Reason.AUTH_TOO_OLD:
        return f'{realm_}, error="insufficient_user_authentication", max_age={requirements.max_auth_age}'
    return f'{realm_}, error="invalid_token"'  # every other reason, present and future


def _quoted(value: str) -> str:
    """An RFC 9110 quoted-string (section 5.6.4)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def denied(status: int, www_authenticate: str) -> ext.CheckResponse:
    code = code_pb2.PERMISSION_DENIED if status == 403 else code_pb2.UNAUTHENTICATED
    return ext.CheckResponse(
        status=status_pb2.Status(code=code),
        denied_response=ext.DeniedHttpResponse(
            status=http_status_pb2.HttpStatus(code=status),
            headers=[_header("www-authenticate", www_authenticate)],
        ),
    )


def allowed(claims: AccessClaims, settings: EnvoySettings) -> ext.CheckResponse:
    """OK, with who the caller is for the upstream. Every header is set, not
    appended, and one with nothing to say is removed: whatever the client sent
    under those names never reaches the upstream."""
    values = {
        settings.subject_header: claims.sub,
        settings.scope_header: " ".join(claims.scope),
        settings.client_id_header: claims.client_id,
        settings.session_header: claims.sid,
    }
    remove = [name for name, value in values.items() if not value]
    if settings.remove_authorization:
        remove.append("authorization")
    return ext.CheckResponse(
        status=status_pb2.Status(code=code_pb2.OK),
        ok_response=ext.OkHttpResponse(
            headers=[_header(name, value) for name, value in values.items() if value],
            headers_to_remove=remove,
        ),
    )


def _header(name: str, value: str) -> base_pb2.HeaderValueOption:
    return base_pb2.HeaderValueOption(header=base_pb2.HeaderValue(key=name, value=value), append_action=_OVERWRITE)
