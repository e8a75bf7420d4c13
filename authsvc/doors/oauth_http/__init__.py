"""OAuth 2.0 over HTTPS, the public keys, health and metrics: the HTTP front
door (aiohttp), as thin as the gRPC servicer and calling the same domain
functions as its RPC twins:

- ``POST /oauth2/token``: ``client_credentials`` (login.issue_with_client,
  as Issue) and ``refresh_token`` (refresh.refresh, as Refresh); see
  :data:`GRANTS` to add a grant;
- ``POST /oauth2/introspect`` (RFC 7662; the Verify rules);
- ``POST /oauth2/revoke`` (RFC 7009; revoke.revoke_token, as Revoke);
- ``GET /.well-known/oauth-authorization-server`` (RFC 8414),
  ``/.well-known/jwks.json``, ``/livez``, ``/readyz``, ``/healthz``, ``/metrics``.
"""

from ._request import ClientAuth, Form, HttpFailure
from ._server import HttpConfig, HttpDoor
from ._token import GRANTS, Grant, TokenRequest, authenticated_client, grant, token_answer

__all__ = [
    "GRANTS",
    "ClientAuth",
    "Form",
    "Grant",
    "HttpConfig",
    "HttpDoor",
    "HttpFailure",
    "TokenRequest",
    "authenticated_client",
    "grant",
    "token_answer",
]
