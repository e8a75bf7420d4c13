"""AdminService, service clients: create, list (paged), disable and enable,
rotate the secret (the old one works for the overlap, then stops), delete."""

from __future__ import annotations

import grpc

from authsvc_client import admin_pb, pb

from ..conftest import unique
from .admin_support import fails
from .helpers import ClientCreds, add_client

C = grpc.StatusCode


async def issue(stub, client_id: str, secret: str) -> pb.TokenPair:
    credential = pb.ClientCredential(client_id=client_id, client_secret=secret)
    return (await stub.Issue(pb.IssueRequest(client=credential, audience=["orders"]))).tokens


async def create(admin, metadata, **fields) -> admin_pb.CreateClientResponse:
    request = admin_pb.CreateClientRequest(name=unique("svc"), scope=["orders.read"], audience=["orders"], **fields)
    return await admin.CreateClient(request, metadata=metadata)


async def test_create_and_log_in(admin, stub, as_admin):
    made = await create(admin, as_admin)
    assert made.client_secret and made.client.client_id.startswith("c_")
    assert (list(made.client.scope), list(made.client.audience)) == (["orders.read"], ["orders"])
    token = (await issue(stub, made.client.client_id, made.client_secret)).access_token
    verified = await stub.Verify(pb.VerifyRequest(token=token, audience="orders"))
    assert verified.active and verified.claims.client_id == made.client.client_id


async def test_a_certificate_client_gets_no_secret(admin, as_admin):
    made = await create(admin, as_admin, tls_san_uri="spiffe://test.example/" + unique("x"))
    assert made.client_secret == "" and made.client.tls_san_uri
    rotate = admin_pb.RotateClientSecretRequest(client_id=made.client.client_id)
    await fails(admin.RotateClientSecret(rotate, metadata=as_admin), C.FAILED_PRECONDITION)


async def test_create_refuses_bad_input(admin, as_admin):
    taken = await create(admin, as_admin)
    again = admin_pb.CreateClientRequest(name=taken.client.name, audience=["orders"])
    await fails(admin.CreateClient(again, metadata=as_admin), C.ALREADY_EXISTS)
    for bad in (
        admin_pb.CreateClientRequest(audience=["orders"]),
        admin_pb.CreateClientRequest(name=unique("svc")),  # no audience
        admin_pb.CreateClientRequest(name=unique("svc"), audience=["a b"]),
        admin_pb.CreateClientRequest(name=unique("svc"), audience=["orders"], tls_san_uri="u", tls_thumbprint="t"),
        admin_pb.CreateClientRequest(name="n" * 300, audience=["orders"]),
    ):
        await fails(admin.CreateClient(bad, metadata=as_admin), C.INVALID_ARGUMENT)


async def test_list_pages_through_every_client(admin, store, clock, as_admin):
    for _ in range(3):
        await add_client(store, clock)
    names: list[str] = []
    token = ""
    while True:
        page = await admin.ListClients(admin_pb.ListClientsRequest(page_size=2, page_token=token), metadata=as_admin)
        assert len(page.clients) <= 2
        names += [c.name for c in page.clients]
        token = page.next_page_token
        if not token:
            break
    assert names == sorted(names) and len(names) == len(set(names)) >= 3
    await fails(admin.ListClients(admin_pb.ListClientsRequest(page_size=1000), metadata=as_admin), C.INVALID_ARGUMENT)
    await fails(admin.ListClients(admin_pb.ListClientsRequest(page_token="%%%"), metadata=as_admin), C.INVALID_ARGUMENT)


async def test_disable_refuses_login_and_cuts_live_tokens(admin, stub, store, clock, as_admin):
    client = await add_client(store, clock)
    token = (await issue(stub, client.id, client.secret)).access_token
    disabled = await admin.DisableClient(admin_pb.DisableClientRequest(client_id=client.id), metadata=as_admin)
    assert disabled.disabled
    await fails(issue(stub, client.id, client.secret), C.UNAUTHENTICATED, "invalid credentials")
    assert not (await stub.Verify(pb.VerifyRequest(token=token, audience="orders"))).active
    clock.advance(2)  # the subject cut covers tokens issued up to the disable (whole seconds), not after
    enabled = await admin.EnableClient(admin_pb.EnableClientRequest(client_id=client.id), metadata=as_admin)
    assert not enabled.disabled
    fresh = (await issue(stub, client.id, client.secret)).access_token
    assert (await stub.Verify(pb.VerifyRequest(token=fresh, audience="orders"))).active


async def test_rotation_keeps_the_old_secret_for_the_overlap_then_stops(admin, stub, store, passwords, clock):
    from .admin_support import admin_metadata, admin_user

    operator = await admin_user(store, passwords, clock)
    client = await add_client(store, clock)
    request = admin_pb.RotateClientSecretRequest(client_id=client.id, overlap_seconds=600)
    rotated = await admin.RotateClientSecret(request, metadata=await admin_metadata(stub, operator))
    new = rotated.client_secret
    assert new and new != client.secret
    assert abs(rotated.client.previous_secret_expires_at.seconds - (clock.now() + 600)) <= 1
    assert (await issue(stub, client.id, client.secret)).access_token  # the old one, still
    assert (await issue(stub, client.id, new)).access_token
    clock.advance(599)
    assert (await issue(stub, client.id, client.secret)).access_token
    clock.advance(2)  # past the overlap: the old secret is dead, the new one lives
    await fails(issue(stub, client.id, client.secret), C.UNAUTHENTICATED, "invalid credentials")
    assert (await issue(stub, client.id, new)).access_token

    # A second rotation: the first new secret now overlaps, the original never comes back.
    request = admin_pb.RotateClientSecretRequest(client_id=client.id)  # the default overlap: a day
    third = await admin.RotateClientSecret(request, metadata=await admin_metadata(stub, operator))
    assert abs(third.client.previous_secret_expires_at.seconds - (clock.now() + 86400)) <= 1
    assert (await issue(stub, client.id, new)).access_token
    assert (await issue(stub, client.id, third.client_secret)).access_token
    await fails(issue(stub, client.id, client.secret), C.UNAUTHENTICATED)


async def test_rotation_without_overlap_ends_the_old_secret_at_once(admin, stub, store, clock, as_admin):
    client = await add_client(store, clock)
    request = admin_pb.RotateClientSecretRequest(client_id=client.id, overlap_seconds=0)
    rotated = await admin.RotateClientSecret(request, metadata=as_admin)
    assert not rotated.client.HasField("previous_secret_expires_at")
    await fails(issue(stub, client.id, client.secret), C.UNAUTHENTICATED)
    assert (await issue(stub, client.id, rotated.client_secret)).access_token


async def test_rotation_refuses_bad_input(admin, store, clock, as_admin):
    client: ClientCreds = await add_client(store, clock)
    for overlap in (-1, 31 * 86400):
        bad = admin_pb.RotateClientSecretRequest(client_id=client.id, overlap_seconds=overlap)
        await fails(admin.RotateClientSecret(bad, metadata=as_admin), C.INVALID_ARGUMENT)
    await fails(admin.RotateClientSecret(admin_pb.RotateClientSecretRequest(), metadata=as_admin), C.INVALID_ARGUMENT)
    unknown = admin_pb.RotateClientSecretRequest(client_id="c_0000000000000000")
    await fails(admin.RotateClientSecret(unknown, metadata=as_admin), C.NOT_FOUND, "no such client")


async def test_delete(admin, stub, store, clock, as_admin):
    client = await add_client(store, clock)
    token = (await issue(stub, client.id, client.secret)).access_token
    await admin.DeleteClient(admin_pb.DeleteClientRequest(client_id=client.id), metadata=as_admin)
    await fails(issue(stub, client.id, client.secret), C.UNAUTHENTICATED)
    assert not (await stub.Verify(pb.VerifyRequest(token=token, audience="orders"))).active
    again = admin_pb.DeleteClientRequest(client_id=client.id)
    await fails(admin.DeleteClient(again, metadata=as_admin), C.NOT_FOUND)
    for rpc, make in (
        (admin.DisableClient, admin_pb.DisableClientRequest),
        (admin.EnableClient, admin_pb.EnableClientRequest),
    ):
        await fails(rpc(make(client_id=client.id), metadata=as_admin), C.NOT_FOUND)
        await fails(rpc(make(), metadata=as_admin), C.INVALID_ARGUMENT)
