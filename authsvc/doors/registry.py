"""Registering the gRPC doors (AuthService, AdminService, Envoy's Authorization) with
deserializers that never leak.

The generated ``add_AuthServiceServicer_to_server`` lets a protobuf
DecodeError escape from deserialization, which grpc turns into UNKNOWN with
the exception text (message type names included). Here a request that does
not parse becomes ``None``, which the ``rpc`` wrapper answers with
INVALID_ARGUMENT "malformed request". A handler may also answer with bytes
already serialized.

Verify, the hot path, takes its request as bytes and parses it itself: a
request seen lately is not parsed again (see grpc_auth.py).

A request over AUTHSVC_MAX_MESSAGE_BYTES becomes :data:`OVERSIZE`, answered
INVALID_ARGUMENT as the proto promises. grpc's own limit (set higher, see
``server.HARD_MAX_RECEIVE_BYTES``) would answer RESOURCE_EXHAUSTED, which
authsvc keeps for throttling.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from types import ModuleType
from typing import Any

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, ServiceDescriptor
from google.protobuf.message import DecodeError

from authsvc_client import pb

SERVICE = pb.DESCRIPTOR.services_by_name["AuthService"]


class _Oversize:
    """A request larger than the configured limit (never parsed)."""


OVERSIZE = _Oversize()


def _lenient(parse: Callable[[bytes], Any] | None, limit: int) -> Callable[[bytes], Any]:
    def deserialize(data: bytes) -> Any:
        if len(data) > limit:
            return OVERSIZE
        if parse is None:
            return data
        try:
            return parse(data)
        except DecodeError:
            return None

    return deserialize


def _serializer(serialize: Callable[[Any], bytes]) -> Callable[[Any], bytes]:
    """Messages are serialized; bytes (an answer serialized once and kept,
    see Verify) go out as they are."""

    def to_bytes(message: Any) -> bytes:
        return message if message.__class__ is bytes else serialize(message)

    return to_bytes


#: Handlers that take the request's bytes as they came.
RAW_REQUESTS = frozenset({"Verify"})


def add_to_server(servicer: object, server: grpc.aio.Server, max_message_bytes: int) -> None:
    """AuthService."""
    add_service(servicer, server, SERVICE, pb, RAW_REQUESTS, max_message_bytes=max_message_bytes)


def add_service(
    servicer: object,
    server: grpc.aio.Server,
    service: ServiceDescriptor,
    messages: ModuleType,
    raw_requests: Collection[str] = (),
    *,
    max_message_bytes: int,
) -> None:
    """Any service whose messages are in ``messages`` (a generated module).
    A request over ``max_message_bytes`` becomes :data:`OVERSIZE`."""
    handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}
    for method in service.methods:
        request_cls = _message_class(messages, method.input_type)
        response_cls = _message_class(messages, method.output_type)
        make = grpc.unary_stream_rpc_method_handler if method.server_streaming else grpc.unary_unary_rpc_method_handler
        raw = method.name in raw_requests
        handlers[method.name] = make(
            getattr(servicer, method.name),
            request_deserializer=_lenient(None if raw else request_cls.FromString, max_message_bytes),
            response_serializer=_serializer(response_cls.SerializeToString),
        )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service.full_name, handlers),))


def _message_class(messages: ModuleType, descriptor: Descriptor) -> Any:
    """The class in ``messages``, or, for a message another proto file defines
    (AdminService answers with authsvc.v1 messages), the one protobuf made."""
    found = getattr(messages, descriptor.name, None)
    if found is not None and found.DESCRIPTOR is descriptor:
        return found
    return message_factory.GetMessageClass(descriptor)
