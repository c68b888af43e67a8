"""API keys with roles: `decide` reads decisions, `ingest` writes events, `admin` does all.

The app factory sets `app.state.api_keys = ApiKeys(settings.api_keys)`; routes declare the
role they need with a dependency alias, e.g. `def reload(_: Admin) -> ...`. With no keys
configured the API is open (local demos); keys are never logged nor echoed.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable, Mapping
from enum import StrEnum
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param
from starlette.datastructures import Headers

from nbo.errors import NboError

API_KEY_HEADER = "X-API-Key"
_REALM = 'Bearer realm="nbo"'


class Role(StrEnum):
    """What a key may do; `admin` may do everything."""

    DECIDE = "decide"
    INGEST = "ingest"
    ADMIN = "admin"

    def allows(self, needed: Role) -> bool:
        """Whether a key with this role may call an endpoint that needs `needed`."""
        return self is Role.ADMIN or self is needed


class ApiKeyConfigError(NboError):
    """NBO_API_KEYS names a role that does not exist, or an empty key."""

    http_status = 500
    exit_code = 2


class Unauthorized(NboError):
    """No API key, or one the server does not know: 401 with a WWW-Authenticate challenge."""

    http_status = 401

    def __init__(self, message: str, *, invalid_key: bool = False) -> None:
        super().__init__(message)
        challenge = f'{_REALM}, error="invalid_token"' if invalid_key else _REALM
        self.headers: Mapping[str, str] = {"WWW-Authenticate": challenge}


class Forbidden(NboError):
    """A known key whose role does not cover the endpoint."""

    http_status = 403


def _sendable(key: str) -> bool:
    """Whether a client can send `key` in a header as it is: HTTP trims the spaces and tabs
    around a value, allows no control character but the tab, and reads bytes as latin-1."""
    return key == key.strip(" \t") and all(
        character == "\t" or 0x20 <= ord(character) <= 0xFF and ord(character) != 0x7F
        for character in key)


class ApiKeys:
    """The configured keys and their roles, checked in constant time."""

    def __init__(self, keys: Mapping[str, str]) -> None:
        valid = ", ".join(role.value for role in Role)
        entries: list[tuple[bytes, Role]] = []
        for number, (key, role_name) in enumerate(keys.items(), start=1):
            if not key:
                raise ApiKeyConfigError(
                    f"NBO_API_KEYS: key #{number} is empty; give every key a long random value")
            if not _sendable(key):
                raise ApiKeyConfigError(
                    f"NBO_API_KEYS: key #{number} starts or ends with a space or tab, or holds "
                    "a control character or one beyond latin-1, which no client can send as "
                    "is in a header; use letters, digits and punctuation")
            try:
                role = Role(role_name)
            except ValueError:
                raise ApiKeyConfigError(
                    f"NBO_API_KEYS: key #{number} {_bad_role(key, role_name)}; "
                    f"a role is one of {valid}") from None
            entries.append((_digest(key), role))
        self._entries = tuple(entries)

    def __repr__(self) -> str:
        return f"ApiKeys({len(self._entries)} keys)"

    @property
    def open(self) -> bool:
        """No keys configured: every request is allowed."""
        return not self._entries

    def role_of(self, presented: str | None) -> Role | None:
        """The role of `presented`, or None for no key or an unknown one.

        Compares against every key, without stopping at a match, and compares fixed-size
        digests, so the time taken says nothing about which key matched or its length.
        """
        if presented is None:
            return None
        candidate = _digest(presented)
        found: Role | None = None
        for digest, role in self._entries:
            if hmac.compare_digest(candidate, digest):
                found = role
        return found

    def grant(self, presented: str | None, needed: Role) -> None:
        """Return when `presented` may call an endpoint that needs `needed` (any key may
        while none is configured); else raise Unauthorized or Forbidden, saying why."""
        if self.open:
            return
        if not presented:
            raise Unauthorized(
                f"this needs an API key: send it in the {API_KEY_HEADER} header "
                "or as Authorization: Bearer <key>")
        granted = self.role_of(presented)
        if granted is None:
            raise Unauthorized("the API key is not valid", invalid_key=True)
        if not granted.allows(needed):
            either = "" if needed is Role.ADMIN else " (or 'admin')"
            raise Forbidden(f"this needs a key with the role {needed.value!r}{either}; "
                            f"this key has the role {granted.value!r}")


MAX_ROLE_SHOWN = 16
"""A longer "role" is not echoed: it may be a key written where the role goes."""


def _bad_role(key: str, role_name: str) -> str:
    """What is wrong with an entry's role, in words that never show a key, even one
    written in the role's place."""
    names = {role.value for role in Role}
    if key in names and role_name not in names:
        return (f"looks reversed: it is the role name {key!r}; write each entry as "
                '"key": "role", the key first')
    if len(role_name) > MAX_ROLE_SHOWN:
        return f"has a role of {len(role_name)} characters (not shown: it may be a key)"
    return f"has the role {role_name!r}"


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


# The two ways to present a key; declared as security schemes so /docs offers "Authorize".
_api_key_header = APIKeyHeader(name=API_KEY_HEADER, auto_error=False,
                               description="An API key from NBO_API_KEYS.")
_bearer = HTTPBearer(auto_error=False, description="An API key from NBO_API_KEYS.")


def api_keys(state: object) -> ApiKeys:
    """The keys the app factory put on `app.state`."""
    keys = getattr(state, "api_keys", None)
    if not isinstance(keys, ApiKeys):
        raise RuntimeError("app.state.api_keys is not set: the app factory must set it")
    return keys


def presented_key(headers: Headers) -> str | None:
    """The key a request presents, read as the two security schemes above read it: the
    X-API-Key header, else the credentials of an `Authorization: Bearer` header."""
    api_key = headers.get(API_KEY_HEADER)
    if api_key:
        return api_key
    scheme, credentials = get_authorization_scheme_param(headers.get("Authorization"))
    return credentials if scheme.lower() == "bearer" and credentials else None


_ROLE_OF_CHECK: dict[Callable[..., Awaitable[None]], Role] = {}
"""`require`'s checks, by the role each lets through."""


def require(role: Role) -> Callable[..., Awaitable[None]]:
    """A FastAPI dependency letting through requests whose key has `role` (or admin)."""

    async def check(
        request: Request,
        api_key: Annotated[str | None, Security(_api_key_header)],
        bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    ) -> None:
        api_keys(request.app.state).grant(
            api_key or (bearer.credentials if bearer else None), role)

    check.__name__ = f"require_{role.value}"
    _ROLE_OF_CHECK[check] = role
    return check


def key_refusal(request: Request) -> NboError | None:
    """What the key check of the route `request` matched would answer it, None when it
    lets it through: for a request FastAPI refused before its dependencies ran (a body it
    could not read as JSON), so that no key still gets a 401, not the body's problems."""
    dependant = getattr(request.scope.get("route"), "dependant", None)
    for dependency in dependant.dependencies if dependant is not None else ():
        role = _ROLE_OF_CHECK.get(dependency.call) if dependency.call else None
        if role is not None:
            try:
                api_keys(request.app.state).grant(presented_key(request.headers), role)
            except NboError as refused:
                return refused
    return None


Decide = Annotated[None, Depends(require(Role.DECIDE))]
"""Route parameter `_: Decide`: the caller may ask for decisions."""
Ingest = Annotated[None, Depends(require(Role.INGEST))]
"""Route parameter `_: Ingest`: the caller may send events and feedback."""
Admin = Annotated[None, Depends(require(Role.ADMIN))]
"""Route parameter `_: Admin`: the caller may change offers and models."""
