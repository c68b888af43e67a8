"""API keys: open mode, 401 without or with an unknown key, 403 for the wrong role."""

from __future__ import annotations

import hmac
import logging
from pathlib import Path
from unittest import mock

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.datastructures import Headers

from api.app import create_app
from api.auth import Admin, ApiKeyConfigError, ApiKeys, Decide, Ingest, Role, presented_key
from api.errors import install_error_handlers
from nbo.settings import Settings, get_settings

KEYS = {"k-decide-0123456789": "decide", "k-ingest-0123456789": "ingest",
        "k-admin-0123456789": "admin"}
KEY_OF = {role: key for key, role in KEYS.items()}
ROUTES = {"decide": ("GET", "/decide"), "ingest": ("POST", "/ingest"),
          "admin": ("POST", "/admin")}


def make_app(keys: dict[str, str] | None) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    if keys is not None:
        app.state.api_keys = ApiKeys(keys)

    @app.get("/decide")
    async def decide(_: Decide) -> dict[str, bool]:
        return {"ok": True}

    @app.post("/ingest")
    async def ingest(_: Ingest) -> dict[str, bool]:
        return {"ok": True}

    @app.post("/admin")
    async def admin(_: Admin) -> dict[str, bool]:
        return {"ok": True}

    @app.post("/ingest-body")
    async def ingest_body(body: dict[str, int], _: Ingest) -> dict[str, int]:
        return body

    return app


@pytest.fixture
def client() -> TestClient:
    return TestClient(make_app(KEYS), raise_server_exceptions=False)


def call(client: TestClient, needed: str, headers: dict[str, str] | None = None) -> int:
    method, path = ROUTES[needed]
    status: int = client.request(method, path, headers=headers).status_code
    return status


@pytest.mark.parametrize("needed", ROUTES)
def test_open_api_lets_everything_through(needed: str) -> None:
    client = TestClient(make_app({}))
    assert call(client, needed) == 200


def test_missing_key_is_401_with_a_challenge(client: TestClient) -> None:
    response = client.get("/decide")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="nbo"'
    body = response.json()
    assert body["error"] == "unauthorized"
    assert "X-API-Key" in body["detail"] and "Bearer" in body["detail"]


def test_unknown_key_is_401_and_not_echoed(
    client: TestClient, caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.DEBUG):
        response = client.get("/decide", headers={"X-API-Key": "k-guess-987654321"})
    assert response.status_code == 401
    assert "invalid_token" in response.headers["www-authenticate"]
    assert response.json()["error"] == "unauthorized"
    assert "k-guess" not in response.text
    assert "k-guess" not in caplog.text


def test_wrong_role_is_403_naming_the_role_needed(client: TestClient) -> None:
    response = client.post("/admin", headers={"X-API-Key": KEY_OF["decide"]})
    assert response.status_code == 403
    body = response.json()
    assert body["error"] == "forbidden"
    assert "'admin'" in body["detail"] and "'decide'" in body["detail"]
    assert KEY_OF["decide"] not in response.text
    assert "(or 'admin')" not in body["detail"]  # said once
    ingest = client.post("/ingest", headers={"X-API-Key": KEY_OF["decide"]}).json()
    assert "the role 'ingest' (or 'admin')" in ingest["detail"]


@pytest.mark.parametrize(
    ("role", "needed", "status"),
    [
        ("decide", "decide", 200), ("decide", "ingest", 403), ("decide", "admin", 403),
        ("ingest", "decide", 403), ("ingest", "ingest", 200), ("ingest", "admin", 403),
        ("admin", "decide", 200), ("admin", "ingest", 200), ("admin", "admin", 200),
    ],
)
def test_role_matrix(client: TestClient, role: str, needed: str, status: int) -> None:
    assert call(client, needed, {"X-API-Key": KEY_OF[role]}) == status


@pytest.mark.parametrize("scheme", ["Bearer", "bearer"])
def test_bearer_header_works_too(client: TestClient, scheme: str) -> None:
    headers = {"Authorization": f"{scheme} {KEY_OF['ingest']}"}
    assert call(client, "ingest", headers) == 200
    assert call(client, "admin", headers) == 403


def test_other_authorization_schemes_count_as_no_key(client: TestClient) -> None:
    response = client.get("/decide", headers={"Authorization": f"Basic {KEY_OF['admin']}"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="nbo"'


@pytest.mark.parametrize(("headers", "presented"), [
    ({"X-API-Key": "k1", "Authorization": "Bearer k2"}, "k1"),
    ({"Authorization": "bearer k2"}, "k2"),
    ({"Authorization": "Basic k3"}, None),
    ({"Authorization": "Bearer"}, None),
    ({}, None),
])
def test_the_key_a_request_presents_is_read_as_the_security_schemes_read_it(
        headers: dict[str, str], presented: str | None) -> None:
    """What the fast path and the check of an unreadable body read (`presented_key`)."""
    assert presented_key(Headers(headers)) == presented


def test_app_without_keys_fails_closed() -> None:
    client = TestClient(make_app(None), raise_server_exceptions=False)
    assert call(client, "decide") == 500


def test_openapi_declares_both_ways_to_send_a_key() -> None:
    schemes = make_app(KEYS).openapi()["components"]["securitySchemes"]
    kinds = {(s["type"], s.get("name") or s.get("scheme")) for s in schemes.values()}
    assert kinds == {("apiKey", "X-API-Key"), ("http", "bearer")}


def test_role_of() -> None:
    keys = ApiKeys(KEYS)
    assert not keys.open
    assert ApiKeys({}).open
    assert keys.role_of(KEY_OF["ingest"]) is Role.INGEST
    assert keys.role_of("nope") is None
    assert keys.role_of("") is None
    assert keys.role_of(None) is None
    assert "k-" not in repr(keys)


@pytest.mark.parametrize("presented", [*KEYS, "unknown-key"])
def test_role_of_compares_against_every_key(presented: str) -> None:
    keys = ApiKeys(KEYS)
    with mock.patch("hmac.compare_digest", wraps=hmac.compare_digest) as compare:
        keys.role_of(presented)
    assert compare.call_count == len(KEYS)


def test_bad_role_name_is_refused_without_showing_the_key() -> None:
    with pytest.raises(ApiKeyConfigError, match="key #2 has the role 'reader'") as info:
        ApiKeys({"first-key-123": "admin", "second-key-456": "reader"})
    assert "second-key-456" not in str(info.value)
    assert "decide, ingest, admin" in str(info.value)


SECRET_KEY = "supersecret-key-123"


@pytest.mark.parametrize("source", ["settings", "environment"])
def test_the_app_refuses_a_bad_role_naming_it_not_the_key(
    source: str, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    keys = {"decide-key-0123456789": "decide", SECRET_KEY: "reader"}
    if source == "environment":
        monkeypatch.setenv("NBO_API_KEYS", f'{{"decide-key-0123456789": "decide", '
                                           f'"{SECRET_KEY}": "reader"}}')
        get_settings.cache_clear()
        settings = get_settings()
    else:
        settings = Settings(api_keys=keys)
    settings = settings.model_copy(update={"redis_url": redis_url,
                                           "models_dir": tmp_path / "models"})
    with pytest.raises(ApiKeyConfigError) as info:
        create_app(settings)
    message = str(info.value)
    assert SECRET_KEY not in message and SECRET_KEY not in repr(info.value)
    assert "key #2 has the role 'reader'" in message
    assert "decide, ingest, admin" in message


def test_a_key_written_where_the_role_goes_is_not_shown() -> None:
    with pytest.raises(ApiKeyConfigError, match="key #1 looks reversed") as reversed_entry:
        ApiKeys({"admin": SECRET_KEY})
    with pytest.raises(ApiKeyConfigError, match="a role of 19 characters") as long_role:
        ApiKeys({"another-key-0123456789": SECRET_KEY})
    for info in (reversed_entry, long_role):
        assert SECRET_KEY not in str(info.value)
        assert "decide, ingest, admin" in str(info.value)


def test_empty_key_is_refused() -> None:
    with pytest.raises(ApiKeyConfigError, match="empty"):
        ApiKeys({"": "admin"})


@pytest.mark.parametrize("key", ["spaced-key-123 ", " spaced-key-123", "\tkey-123",
                                 "bell\x07key-123", "euro-€-key-123"])
def test_a_key_no_client_can_send_is_refused_by_position(key: str) -> None:
    """HTTP trims the spaces around a header's value, allows no control character and
    reads its bytes as latin-1: such a key matched no request, and every request got 401."""
    with pytest.raises(ApiKeyConfigError, match="key #2 starts or ends with a space") as info:
        ApiKeys({"good-key-0123456789": "decide", key: "decide"})
    assert key.strip() not in str(info.value)


@pytest.mark.parametrize("key", ["team a key-0123456789", "clé-secrète-0123456789",
                                 "tab\tinside-0123"])
def test_keys_clients_can_send_are_taken(key: str) -> None:
    """Spaces and tabs inside, latin-1 letters: they arrive as written."""
    assert ApiKeys({key: "decide"}).role_of(key) is Role.DECIDE


def test_admin_role_allows_everything() -> None:
    assert all(Role.ADMIN.allows(role) for role in Role)
    assert not Role.DECIDE.allows(Role.INGEST)


@pytest.mark.parametrize("body", [b'{"events": [', b'{"a": "caf\xe9"}'])
@pytest.mark.parametrize(("key", "status"), [(None, 401), ("k-decide-0123456789", 403),
                                             ("k-bogus-0123456789", 401),
                                             ("k-ingest-0123456789", None)])
def test_a_body_that_cannot_be_read_is_refused_for_its_key_first(
        client: TestClient, body: bytes, key: str | None, status: int | None) -> None:
    """FastAPI reads the body before any dependency runs: without the key check's answer,
    a caller with no key learnt how the body failed to parse."""
    headers = {"content-type": "application/json", **({"X-API-Key": key} if key else {})}
    response = client.post("/ingest-body", content=body, headers=headers)
    if status is None:  # a key the route takes: the body's problem
        assert response.status_code in (400, 422), response.text
        assert response.json()["error"] not in ("unauthorized", "forbidden")
    else:
        assert response.status_code == status, response.text
