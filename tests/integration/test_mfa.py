"""TOTP: enrolment, challenges, replay, attempts, expiry, recovery codes."""

from __future__ import annotations

import grpc
import pyotp
import pytest

from authsvc_client import pb

from .helpers import UserCreds, add_user, bearer, self_login


async def enrol(stub, user: UserCreds, clock) -> tuple[str, list[str]]:
    token = (await self_login(stub, user)).access_token
    enrolment = await stub.EnrollMFA(pb.EnrollMFARequest(), metadata=bearer(token))
    assert enrolment.otpauth_uri.startswith("otpauth://totp/")
    assert "issuer=authsvc-test" in enrolment.otpauth_uri
    code = pyotp.TOTP(enrolment.secret).at(clock.now())
    confirmed = await stub.ConfirmMFA(pb.ConfirmMFARequest(totp_code=code), metadata=bearer(token))
    assert len(confirmed.recovery_codes) == 10
    clock.advance(30)  # the confirming code's time step is spent
    return enrolment.secret, list(confirmed.recovery_codes)


async def start(stub, user: UserCreds) -> pb.MFAChallenge:
    credential = pb.PasswordCredential(username=user.name, password=user.password)
    resp = await stub.Issue(pb.IssueRequest(password=credential, audience=["authsvc"]))
    assert resp.WhichOneof("result") == "mfa_challenge"
    return resp.mfa_challenge


async def answer(stub, challenge_id: str, **code) -> pb.TokenPair:
    return (await stub.ChallengeMFA(pb.ChallengeMFARequest(challenge_id=challenge_id, **code))).tokens


async def test_login_with_totp(stub, store, passwords, clock):
    user = await add_user(store, passwords, clock)
    secret, _ = await enrol(stub, user, clock)
    challenge = await start(stub, user)
    assert list(challenge.methods) == ["totp", "recovery_code"]
    assert challenge.expires_at.seconds == int(clock.now()) + 300
    pair = await answer(stub, challenge.challenge_id, totp_code=pyotp.TOTP(secret).at(clock.now()))
    verified = await stub.Verify(pb.VerifyRequest(token=pair.access_token, audience="authsvc"))
    assert verified.active and list(verified.claims.amr) == ["pwd", "otp"] and verified.claims.acr == "aal2"
    # The TOTP secret is stored sealed, not in clear.
    row = await store._pool.fetchrow("SELECT secret_sealed FROM totp_enrolments WHERE user_id = $1::uuid", user.id)
    assert secret.encode() not in bytes(row["secret_sealed"])


async def test_a_code_is_accepted_once_only(stub, store, passwords, clock):
    user = await add_user(store, passwords, clock)
    secret, _ = await enrol(stub, user, clock)
    code = pyotp.TOTP(secret).at(clock.now())
    await answer(stub, (await start(stub, user)).challenge_id, totp_code=code)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await answer(stub, (await start(stub, user)).challenge_id, totp_code=code)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    clock.advance(30)
    assert await answer(stub, (await start(stub, user)).challenge_id, totp_code=pyotp.TOTP(secret).at(clock.now()))


async def test_a_challenge_allows_few_attempts_and_is_single_use(stub, store, passwords, clock):
    user = await add_user(store, passwords, clock)
    secret, _ = await enrol(stub, user, clock)
    challenge = await start(stub, user)
    good = pyotp.TOTP(secret).at(clock.now())
    wrong = f"{(int(good) + 1) % 1_000_000:06d}"
    for _ in range(5):
        with pytest.raises(grpc.aio.AioRpcError):
            await answer(stub, challenge.challenge_id, totp_code=wrong)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await answer(stub, challenge.challenge_id, totp_code=good)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    fresh = await start(stub, user)
    assert await answer(stub, fresh.challenge_id, totp_code=good)
    with pytest.raises(grpc.aio.AioRpcError):  # spent
        await answer(stub, fresh.challenge_id, totp_code=good)


async def test_a_challenge_expires(stub, store, passwords, clock):
    user = await add_user(store, passwords, clock)
    secret, _ = await enrol(stub, user, clock)
    challenge = await start(stub, user)
    clock.advance(301)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await answer(stub, challenge.challenge_id, totp_code=pyotp.TOTP(secret).at(clock.now()))
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_recovery_codes_work_once(stub, store, passwords, clock):
    user = await add_user(store, passwords, clock)
    _, codes = await enrol(stub, user, clock)
    pair = await answer(stub, (await start(stub, user)).challenge_id, recovery_code=codes[0].upper())
    verified = await stub.Verify(pb.VerifyRequest(token=pair.access_token, audience="authsvc"))
    assert list(verified.claims.amr) == ["pwd", "mfa"]
    challenge = await start(stub, user)
    with pytest.raises(grpc.aio.AioRpcError):
        await answer(stub, challenge.challenge_id, recovery_code=codes[0])
    # A failed recovery attempt leaves the challenge usable within its attempts.
    assert await answer(stub, challenge.challenge_id, recovery_code=codes[1])


async def test_enrolment_needs_a_recent_login_and_happens_once(stub, store, passwords, clock):
    user = await add_user(store, passwords, clock)
    token = (await self_login(stub, user)).access_token
    clock.advance(901)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.EnrollMFA(pb.EnrollMFARequest(), metadata=bearer(token))
    assert err.value.code() in (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.UNAUTHENTICATED)
    secret, _ = await enrol(stub, user, clock)
    # Enrolled: a fresh MFA login cannot start a second enrolment over the first.
    pair = await answer(stub, (await start(stub, user)).challenge_id, totp_code=pyotp.TOTP(secret).at(clock.now()))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.EnrollMFA(pb.EnrollMFARequest(), metadata=bearer(pair.access_token))
    assert (err.value.code(), err.value.details()) == (grpc.StatusCode.FAILED_PRECONDITION, "MFA is already enrolled")


async def test_confirm_without_pending_enrolment_or_with_wrong_code(stub, store, passwords, clock):
    user = await add_user(store, passwords, clock)
    token = (await self_login(stub, user)).access_token
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.ConfirmMFA(pb.ConfirmMFARequest(totp_code="123456"), metadata=bearer(token))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    enrolment = await stub.EnrollMFA(pb.EnrollMFARequest(), metadata=bearer(token))
    good = pyotp.TOTP(enrolment.secret).at(clock.now())
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.ConfirmMFA(
            pb.ConfirmMFARequest(totp_code=f"{(int(good) + 7) % 1_000_000:06d}"), metadata=bearer(token)
        )
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
