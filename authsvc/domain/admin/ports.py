"""What the admin use cases need from storage beyond the core port
(store/_admin.py implements it; ``ports.Store`` includes it)."""

from __future__ import annotations

from typing import Protocol

from authsvc.domain.models import Client, User


class AdminStore(Protocol):
    async def users_after(self, username: str, limit: int) -> list[User]:
        """Users whose name sorts after ``username``, by name."""
        ...

    async def set_user_disabled(
        self, user_id: str, disabled: bool, now: float, revocation_expires: float
    ) -> int | None:
        """Set the flag; disabling also revokes every session in the same
        transaction. Gives the sessions revoked, or None for no such user."""
        ...

    async def delete_user(self, user_id: str, now: float, revocation_expires: float) -> int | None:
        """Revoke every session and token of the user, then delete it (and, by
        cascade, its sessions and MFA). None for no such user."""
        ...

    async def clients_after(self, name: str, limit: int) -> list[Client]: ...

    async def set_client_disabled(
        self, client_id: str, disabled: bool, now: float, revocation_expires: float
    ) -> bool:
        """Disabling also cuts the client's live tokens. False: no such client."""
        ...

    async def rotate_client_secret(
        self, client_id: str, secret_hash: bytes, previous_expires_at: float | None
    ) -> bool:
        """The new secret; the current one becomes the previous, valid until
        ``previous_expires_at`` (None: not at all). False: no such client."""
        ...

    async def delete_client(self, client_id: str, now: float, revocation_expires: float) -> bool: ...
