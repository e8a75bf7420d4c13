"""The endpoints other than the token endpoint: introspection (RFC 7662),
revocation (RFC 7009), metadata (RFC 8414), the public keys, health and
metrics. Each as thin as a servicer method."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

from authsvc.domain.deps import Deps
from authsvc.domain.sessions import revoke
from authsvc.domain.tokens.introspection import introspect
from authsvc.doors.http_status import bad_request
from authsvc_client import AccessClaims

from ._request import HttpFailure, call_info, client_auth, read_form
from ._token import GRANTS, authenticated_client

#: Token answers must never be stored (RFC 6749 section 5.1).
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
#: Public documents any origin may read (a browser fetching the keys).
CORS = {"Access-Control-Allow-Origin": "*"}
PREFLIGHT = {
    **CORS,
    "Access-Control-Allow-Methods": "GET, HEAD, OPTIONS",
    "Access-Control-Allow-Headers": "*",
    "Access-Control-Max-Age": "86400",
}
PUBLIC_CACHE = {"Cache-Control": "public, max-age=60"}

PATHS = {
    "token": "/oauth2/token",
    "introspect": "/oauth2/introspect",
    "revoke": "/oauth2/revoke",
    "jwks": "/.well-known/jwks.json",
    "metadata": "/.well-known/oauth-authorization-server",
}


def json_answer(body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(body, status=status, headers={**NO_STORE, **(headers or {})})


async def introspect_endpoint(deps: Deps, request: web.Request) -> web.Response:
    form = await read_form(request)
    call = call_info(request)
    caller = await authenticated_client(deps, client_auth(request, form, call), call)
    token = form.one("token")
    if not token:
        raise HttpFailure(bad_request("token is required"))
    claims = introspect(deps, caller, token, form.audiences())
    return json_answer(introspection(claims) if claims else {"active": False})


def introspection(c: AccessClaims) -> dict[str, Any]:
    """RFC 7662 section 2.2, with the JWT claims of RFC 9068 and ``cnf``."""
    body: dict[str, Any] = {
        "active": True, "token_type": "Bearer", "iss": c.iss, "sub": c.sub, "aud": list(c.aud),
        "exp": c.exp, "iat": c.iat, "nbf": c.nbf, "jti": c.jti, "scope": " ".join(c.scope),
    }  # fmt: skip
    extra = {"client_id": c.client_id, "sid": c.sid, "auth_time": c.auth_time, "amr": list(c.amr), "acr": c.acr}
    body.update({k: v for k, v in extra.items() if v})
    if c.cnf_x5t_s256:
        body["cnf"] = {"x5t#S256": c.cnf_x5t_s256}
    return body


async def revoke_endpoint(deps: Deps, request: web.Request) -> web.Response:
    """RFC 7009: the Revoke RPC's token case. An unknown, invalid or already
    revoked token is answered 200 all the same (section 2.2)."""
    form = await read_form(request)
    call = call_info(request)
    await authenticated_client(deps, client_auth(request, form, call), call)
    token = form.one("token")
    if not token:
        raise HttpFailure(bad_request("token is required"))
    await revoke.revoke_token(deps, token, call)
    return web.Response(status=200, headers=NO_STORE)


def metadata(issuer: str, base_url: str, mtls: bool, bound_tokens: bool) -> dict[str, Any]:
    """RFC 8414 section 2, naming only what this server does. There is no
    authorization endpoint (no grant here sends a browser to one), hence no
    response types."""
    methods = ["client_secret_basic", "client_secret_post", *(["tls_client_auth"] if mtls else [])]
    return {
        "issuer": issuer,
        "token_endpoint": base_url + PATHS["token"],
        "jwks_uri": base_url + PATHS["jwks"],
        "response_types_supported": [],
        "grant_types_supported": list(GRANTS),
        # "none": a refresh token alone is enough (it belongs to a user session).
        "token_endpoint_auth_methods_supported": [*methods, "none"],
        "introspection_endpoint": base_url + PATHS["introspect"],
        "introspection_endpoint_auth_methods_supported": methods,
        "revocation_endpoint": base_url + PATHS["revoke"],
        "revocation_endpoint_auth_methods_supported": methods,
        "tls_client_certificate_bound_access_tokens": mtls and bound_tokens,  # RFC 8705 section 3.3
    }


def probe(ok: Callable[[], bool]) -> Callable[[web.Request], Any]:
    async def answer(request: web.Request) -> web.Response:
        if ok():
            return web.Response(text="ok\n")
        return web.Response(status=503, text="unavailable\n")

    return answer
