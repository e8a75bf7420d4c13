"""Input checks that turn bad requests into INVALID_ARGUMENT with a safe message."""

from __future__ import annotations

from collections.abc import Sequence

from authsvc.errors import InvalidArgument

MAX_NAME = 256
MAX_SECRET = 1024
MAX_TOKEN = 8192
MAX_LIST = 32


def text(value: str, name: str, max_bytes: int = MAX_NAME) -> str:
    """A required string field of at most ``max_bytes`` UTF-8 bytes."""
    if not value:
        raise InvalidArgument(f"{name} is required")
    # An ASCII string is as many bytes as characters: no encoding on the hot path.
    if len(value) > max_bytes or (not value.isascii() and len(value.encode("utf-8", "surrogatepass")) > max_bytes):
        raise InvalidArgument(f"{name} is too long")
    if "\x00" in value:
        raise InvalidArgument(f"{name} is malformed")
    return value


def names(values: Sequence[str], name: str) -> tuple[str, ...]:
    """A list of scopes or audiences: bounded, each a non-empty printable word."""
    if len(values) > MAX_LIST:
        raise InvalidArgument(f"too many {name} values")
    for value in values:
        text(value, name)
        if not value.isprintable() or " " in value:
            raise InvalidArgument(f"{name} values must be single printable words")
    return tuple(values)
