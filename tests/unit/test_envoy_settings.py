"""The Envoy Check's settings and the answers they shape (pure functions of
authsvc/doors/envoy.py; the door itself is tested against the server in
tests/integration/test_envoy_check.py and behind a real Envoy in tests/e2e)."""

from __future__ import annotations

import pytest
from envoy.service.auth.v3 import attribute_context_pb2 as attrs
from envoy.service.auth.v3 import external_auth_pb2 as ext

from authsvc.config import ConfigError, EnvoySettings, Settings
from authsvc.doors.envoy import allowed, challenge, route_requirements
from authsvc_client import AccessClaims, Reason, Requirements

CLAIMS = AccessClaims(
    iss="authsvc", sub="u1", aud=("orders",), exp=2, iat=1, nbf=1, jti="j", client_id="web", scope=("a", "b"), sid="s1"
)


def test_defaults():
    envoy = Settings.from_env({}).envoy
    assert envoy == EnvoySettings()
    assert envoy.default_audience is None and not envoy.remove_authorization


def test_every_setting_is_read():
    envoy = Settings.from_env(
        {
            "AUTHSVC_ENVOY_DEFAULT_AUDIENCE": "orders",
            "AUTHSVC_ENVOY_SUBJECT_HEADER": "X-User",
            "AUTHSVC_ENVOY_SCOPE_HEADER": "x-scopes",
            "AUTHSVC_ENVOY_CLIENT_ID_HEADER": "x-client",
            "AUTHSVC_ENVOY_SESSION_HEADER": "x-session",
            "AUTHSVC_ENVOY_REMOVE_AUTHORIZATION": "true",
        }
    ).envoy
    assert envoy == EnvoySettings("orders", "x-user", "x-scopes", "x-client", "x-session", True)


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"AUTHSVC_ENVOY_SUBJECT_HEADER": "x user"}, "AUTHSVC_ENVOY_SUBJECT_HEADER"),
        ({"AUTHSVC_ENVOY_SCOPE_HEADER": ":path"}, "AUTHSVC_ENVOY_SCOPE_HEADER"),
        ({"AUTHSVC_ENVOY_CLIENT_ID_HEADER": "Authorization"}, "AUTHSVC_ENVOY_CLIENT_ID_HEADER"),
        ({"AUTHSVC_ENVOY_SESSION_HEADER": "x-authsvc-subject"}, "AUTHSVC_ENVOY_*_HEADER"),
        ({"AUTHSVC_ENVOY_REMOVE_AUTHORIZATION": "perhaps"}, "AUTHSVC_ENVOY_REMOVE_AUTHORIZATION"),
        ({"AUTHSVC_ENVOY_DEFAULT_AUDIENCE": "a\x00b"}, "AUTHSVC_ENVOY_DEFAULT_AUDIENCE"),
    ],
)
def test_bad_values_are_named(env, named):
    with pytest.raises(ConfigError) as info:
        Settings.from_env(env)
    assert str(info.value).startswith(named)


def test_headers_follow_the_settings_and_authorization_can_be_removed():
    settings = EnvoySettings(subject_header="x-user", remove_authorization=True)
    ok = allowed(CLAIMS, settings).ok_response
    assert {h.header.key: h.header.value for h in ok.headers} == {
        "x-user": "u1", "x-authsvc-scope": "a b", "x-authsvc-client-id": "web", "x-authsvc-session-id": "s1",
    }  # fmt: skip
    assert list(ok.headers_to_remove) == ["authorization"]


def check_request(**extensions: str) -> ext.CheckRequest:
    return ext.CheckRequest(attributes=attrs.AttributeContext(context_extensions=extensions))


def test_the_default_audience_applies_where_the_route_names_none():
    assert route_requirements(check_request(), "orders") == Requirements(audience="orders")
    assert route_requirements(check_request(audience="billing"), "orders").audience == "billing"
    wanted = route_requirements(check_request(scope="  a   b ", max_auth_age="60"), "orders")
    assert (wanted.scopes, wanted.max_auth_age) == (("a", "b"), 60)


def test_challenges_quote_what_they_name():
    odd = Requirements(audience='say "hi"\\', scopes=("x",))
    assert challenge(Reason.EXPIRED, odd) == 'Bearer realm="say \\"hi\\"\\\\", error="invalid_token"'
    # Reasons the door does not single out, today's and any added later, are invalid_token.
    for reason in Reason:
        if reason not in (Reason.MISSING_SCOPE, Reason.AUTH_TOO_OLD):
            assert challenge(reason, odd).endswith('error="invalid_token"'), reason
