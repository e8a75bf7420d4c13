"""Token introspection (RFC 7662): a client asks whether a token is active.

The token is judged by exactly the rules of Verify (``LiveState.verify``);
what introspection adds is which audience those rules check, since RFC 7662
has the caller name none:

- the audiences asked for (``audience``, or RFC 8707's ``resource``), each of
  which must be one the calling client is registered for; else
- every audience the calling client is registered for: the token is active
  when it is good for one of them.

So a client learns about tokens meant for its own audiences and no others
(RFC 7662 section 4: a token scanner learns nothing about other services'
tokens). A certificate-bound token is reported with its ``cnf`` (RFC 8705
section 3.2): the resource server, which holds the presenter's connection,
compares the thumbprint; authsvc cannot.
"""

from __future__ import annotations

from collections.abc import Sequence

from authsvc.domain import validate
from authsvc.domain.deps import Deps
from authsvc.domain.models import Client
from authsvc.domain.sessions.grants import narrow
from authsvc_client import AccessClaims, Reason, Requirements, TokenRejected
from authsvc_client._verify import read_access_token


def introspect(deps: Deps, caller: Client, token: str, audiences: Sequence[str]) -> AccessClaims | None:
    """The claims of ``token`` when it is active for one of the audiences
    (see the module docstring), else None. Raises PermissionDenied for an
    audience the caller is not registered for."""
    wanted = narrow(validate.names(audiences, "audience"), caller.audiences, "audience")
    if not token or len(token) > validate.MAX_TOKEN:
        return None
    for audience in wanted:
        try:
            return _verify(deps, token, audience)
        except TokenRejected:
            continue
    return None


def _verify(deps: Deps, token: str, audience: str) -> AccessClaims:
    live = deps.live
    try:
        return live.verify(token, Requirements(audience))
    except TokenRejected as rejected:
        if rejected.reason is not Reason.CERT_MISMATCH:
            raise
    # Bound: every other rule is checked again with the binding taken as met,
    # and the caller is told the thumbprint it must compare.
    bound = read_access_token(token, live.keyring.verification_keys, live.encryptor.decryption_keys)
    return live.verify(token, Requirements(audience, cert_thumbprint=bound.cnf_x5t_s256))
