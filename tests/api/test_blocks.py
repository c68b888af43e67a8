"""Blocks for email builders: one content per (user, campaign), cacheable, escaped."""

from __future__ import annotations

import redis
from fastapi.testclient import TestClient

from api.app import create_app
from api.rendering import render_html
from decisions import keys
from nbo.cli import _examples
from tests.api.conftest import ServedWorld


def test_one_campaign_gets_one_content(api: TestClient, served_world: ServedWorld) -> None:
    user = served_world.users[5]
    url = f"/v1/users/{user}/blocks/offer"
    params = {"campaign_id": "black-friday", "format": "json"}
    first = api.get(url, params=params)
    assert first.status_code == 200, first.text
    with TestClient(create_app(served_world.settings())) as other_process:
        again = [other_process.get(url, params=params) for _ in range(3)]
    assert {r.content for r in again} == {first.content}
    assert first.headers["ETag"] == again[0].headers["ETag"]
    assert first.headers["Cache-Control"].startswith("private, max-age=")
    body = first.json()
    assert body["user_id"] == user and body["campaign_id"] == "black-friday"
    other_campaign = api.get(url, params={**params, "campaign_id": "cyber-monday"}).json()
    assert other_campaign["decision_id"] != body["decision_id"]


def test_a_remembered_block_is_found_by_the_read_without_deciding(
        api: TestClient, served_world: ServedWorld) -> None:
    client = redis.Redis.from_url(served_world.redis_url)
    url = f"/v1/users/{served_world.users[8]}/blocks/offer"
    params = {"campaign_id": "spring", "format": "json"}

    def transactions() -> int:
        return int(client.info("commandstats").get("cmdstat_exec", {}).get("calls", 0))

    assert api.get(f"/v1/users/{served_world.users[8]}/decision").status_code == 200
    before = transactions()  # the catalog is read by now
    first = api.get(url, params=params)
    assert transactions() == before + 1  # the decision's read, which also looked for it
    logged = client.xlen(keys.DECISIONS)
    again = api.get(url, params=params)
    assert again.content == first.content
    assert client.xlen(keys.DECISIONS) == logged  # not decided again, so not logged again
    assert transactions() == before + 2  # the read found it
    max_age = int(again.headers["Cache-Control"].removeprefix("private, max-age="))
    assert 0 < max_age <= served_world.settings().block_ttl_s


def test_a_known_etag_gets_a_304(api: TestClient, served_world: ServedWorld) -> None:
    url = f"/v1/users/{served_world.users[6]}/blocks/recommendations"
    first = api.get(url, params={"campaign_id": "c1"})
    assert first.headers["content-type"].startswith("text/html")
    assert '<div class="nbo-block nbo-recommendations"' in first.text
    again = api.get(url, params={"campaign_id": "c1"},
                    headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304 and again.content == b""


def test_without_a_campaign_nothing_is_remembered(api: TestClient,
                                                  served_world: ServedWorld) -> None:
    url = f"/v1/users/{served_world.users[7]}/blocks/offer"
    first, second = api.get(url, params={"format": "json"}), api.get(url,
                                                                     params={"format": "json"})
    assert first.headers["Cache-Control"] == "no-store"
    assert first.json()["decision_id"] != second.json()["decision_id"]


def test_unknown_blocks_and_formats_are_422(api: TestClient) -> None:
    assert api.get("/v1/users/u1/blocks/banner").status_code == 422
    assert api.get("/v1/users/u1/blocks/offer", params={"format": "pdf"}).status_code == 422


def test_html_escapes_every_value() -> None:
    content = (b'{"block": "offer", "decision_id": "d<1>", "offer": null, '
               b'"categories": ["<script>"], "brands": ["a&b"]}')
    html = render_html(content).decode()
    assert "<script>" not in html and "&lt;script&gt;" in html and "a&amp;b" in html


def test_the_demo_examples_work_when_pasted(api: TestClient, served_world: ServedWorld) -> None:
    examples = [line for line in _examples(served_world.directory, 8000)
                if line.startswith("curl")]
    assert len(examples) >= 3
    for line in examples:
        url = line.split("http://127.0.0.1:8000", 1)[1].split("'", 1)[0].split(" ", 1)[0]
        if " -d '" in line:
            response = api.post(url, content=line.split(" -d '", 1)[1].rstrip("'"),
                                headers={"Content-Type": "application/json"})
        else:
            response = api.get(url)
        assert response.status_code == 200, (line, response.text)
    cart = api.get(examples[0].split("http://127.0.0.1:8000", 1)[1].rstrip("'")).json()
    in_cart = cart["explanation"]["features"]["cart_categories"]  # a user with a cart
    assert in_cart and cart["categories"][:len(in_cart)] == in_cart[:len(cart["categories"])]
