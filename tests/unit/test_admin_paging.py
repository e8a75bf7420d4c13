"""Admin page tokens and sizes: what comes back is what went in; anything
else is INVALID_ARGUMENT, never a crash."""

from __future__ import annotations

import pytest

from authsvc.domain.admin import paging
from authsvc.errors import InvalidArgument


@pytest.mark.parametrize("position", ["", "alice", "ünïcode name", "a" * 256, "with=padding?"])
def test_a_token_names_the_position_it_was_made_from(position):
    assert paging.decode(paging.encode(position)) == position


@pytest.mark.parametrize("token", ["not a token", "%%%", "cDI6eA", "x" * 2000, "\x00", "AAAA"])
def test_anything_else_is_refused(token):
    with pytest.raises(InvalidArgument, match="page_token is malformed"):
        paging.decode(token)


def test_sizes():
    assert paging.size(0) == paging.DEFAULT_PAGE_SIZE
    assert paging.size(paging.MAX_PAGE_SIZE) == paging.MAX_PAGE_SIZE
    for bad in (-1, paging.MAX_PAGE_SIZE + 1):
        with pytest.raises(InvalidArgument):
            paging.size(bad)


def test_a_page_says_whether_more_follow():
    assert paging.page([1, 2], 2, "b") == paging.Page([1, 2], "")
    more = paging.page([1, 2, 3], 2, "b")
    assert more.items == [1, 2] and paging.decode(more.next_token) == "b"
