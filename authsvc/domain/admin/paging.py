"""Page sizes and page tokens for the admin lists (keyset paging: a token
names the last row given, so pages stay right while rows come and go)."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Generic, TypeVar

from authsvc.errors import InvalidArgument

T = TypeVar("T")

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
_MAX_TOKEN = 1024
_PREFIX = "p1:"  # a version, so the format can change without misreading old tokens


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    next_token: str  # "" on the last page


def size(requested: int) -> int:
    if requested < 0 or requested > MAX_PAGE_SIZE:
        raise InvalidArgument(f"page_size must be between 0 and {MAX_PAGE_SIZE}")
    return requested or DEFAULT_PAGE_SIZE


def encode(position: str) -> str:
    return base64.urlsafe_b64encode((_PREFIX + position).encode()).decode().rstrip("=")


def decode(token: str) -> str:
    """The position a token names; "" (the start) for no token."""
    if not token:
        return ""
    if len(token) > _MAX_TOKEN:
        raise InvalidArgument("page_token is malformed")
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidArgument("page_token is malformed") from None
    if not text.startswith(_PREFIX):
        raise InvalidArgument("page_token is malformed")
    return text[len(_PREFIX) :]


def page(rows: list[T], limit: int, position: str) -> Page[T]:
    """``rows`` were fetched with ``limit + 1``: one more means another page."""
    if len(rows) <= limit:
        return Page(rows, "")
    return Page(rows[:limit], encode(position))
