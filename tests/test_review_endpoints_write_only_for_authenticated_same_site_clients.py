"""BirdNET-Go's review endpoints over raw HTTP against a real ``birdd web``: an authenticated review lands in the
store and in the detection's fields; unauthenticated, cross-site and CSRF-less writes, and changes to a locked
detection, are refused and change nothing; batch review; the verified/locked filters; aiobirdnetgo reads it."""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import sqlite3
from urllib.parse import urlsplit

import numpy as np
import pytest
from web_fixtures import ServerThread, fill_store, web_config

USER, PASSWORD, TOKEN_FILE_TEXT = "birder", "hunter2", "hunter2"


def basic(user: str = USER, password: str = PASSWORD) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class Client:
    """Raw HTTP/1.1 requests to the server (one connection per request)."""

    def __init__(self, url: str):
        parts = urlsplit(url)
        self.host, self.port = parts.hostname, parts.port

    def request(self, method: str, path: str, body: object = None, headers: dict | None = None,
                raw: bytes | None = None) -> tuple[int, dict]:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        sent = {"Content-Type": "application/json", **(headers or {})}
        conn.request(method, path, body=data, headers={k: v for k, v in sent.items() if v is not None})
        response = conn.getresponse()
        text = response.read()
        conn.close()
        return response.status, (json.loads(text) if text else {})

    def get(self, path: str, authorization: str = basic()) -> dict:
        status, payload = self.request("GET", path, headers={"Authorization": authorization, "Content-Type": None})
        assert status == 200, payload
        return payload


@pytest.fixture(scope="module")
def station(tmp_path_factory):
    root = tmp_path_factory.mktemp("station")
    store = fill_store(root, np.random.default_rng(11), count=9)
    server = ServerThread(web_config(store, auth="basic", username=USER, password_file=str(_secret(root)),
                                     read_only=False))
    yield store, server, Client(server.url)
    server.stop()


def _secret(root):
    path = root / "password"
    path.write_text(PASSWORD + "\n")
    return path


def csrf(client: Client) -> str:
    config = client.get("/api/v2/app/config")
    assert config["reviews"] is True and config["security"] == {"enabled": True, "accessAllowed": True}
    return config["csrfToken"]


def browser_headers(client: Client, **extra) -> dict:
    return {"Authorization": basic(), "X-CSRF-Token": csrf(client), "Origin": f"http://{client.host}:{client.port}",
            **extra}


def reviews_in_store(store) -> dict[int, tuple]:
    with sqlite3.connect(store.path) as conn:
        return {row[0]: row[1:] for row in conn.execute("SELECT detection, verified, locked FROM reviews")}


def test_an_authenticated_review_is_stored_and_shown(station):
    store, _, client = station
    row = store.ids[0]
    status, payload = client.request("POST", f"/api/v2/detections/{row}/review",
                                     {"verified": "correct", "comment": "clear song at dawn"}, browser_headers(client))
    assert (status, payload) == (200, {"status": "success"})
    detection = client.get(f"/api/v2/detections/{row}")
    assert detection["verified"] == "correct" and detection["locked"] is False
    assert [c["entry"] for c in detection["comments"]] == ["clear song at dawn"]
    assert reviews_in_store(store)[row] == ("correct", 0)
    # a bearer client (an API client: a browser never adds the header by itself) needs no CSRF token
    status, _ = client.request("POST", f"/api/v2/detections/{row}/review", {"verified": "false_positive"},
                               {"Authorization": f"Bearer {TOKEN_FILE_TEXT}"})
    assert status == 200 and client.get(f"/api/v2/detections/{row}")["verified"] == "false_positive"


@pytest.mark.parametrize("headers, expected", [
    ({}, 401),                                                   # no credentials
    ({"Authorization": basic(password="wrong")}, 401),
    ({"Authorization": basic()}, 403),                           # ambient browser credentials, no CSRF token
    ({"Authorization": basic(), "X-CSRF-Token": "guessed"}, 403),
    ("cross-origin", 403),                                       # the right token, but from another site's page
    ("cross-site-fetch", 403),
    ("form", 415),                                               # a cross-site HTML form cannot send JSON
])
def test_writes_that_could_be_forged_are_refused_and_change_nothing(station, headers, expected):
    store, _, client = station
    row = store.ids[1]
    if headers == "cross-origin":
        headers = browser_headers(client, Origin="http://evil.example")
    elif headers == "cross-site-fetch":
        headers = browser_headers(client, **{"Sec-Fetch-Site": "cross-site"})
    elif headers == "form":
        headers = browser_headers(client, **{"Content-Type": "application/x-www-form-urlencoded"})
    before = reviews_in_store(store)
    status, payload = client.request("POST", f"/api/v2/detections/{row}/review", {"verified": "correct"}, headers)
    assert status == expected and payload["code"] == expected and "\n" not in payload["message"]
    assert reviews_in_store(store) == before and client.get(f"/api/v2/detections/{row}")["verified"] == "unverified"


def test_a_locked_detection_refuses_changes_until_unlocked(station):
    store, _, client = station
    row = store.ids[2]
    status, _ = client.request("POST", f"/api/v2/detections/{row}/review",
                               {"verified": "false_positive", "lock_detection": True}, browser_headers(client))
    assert status == 200 and client.get(f"/api/v2/detections/{row}")["locked"] is True
    status, payload = client.request("POST", f"/api/v2/detections/{row}/review", {"verified": "correct"},
                                     browser_headers(client))
    assert status == 409 and "locked" in payload["message"]
    assert reviews_in_store(store)[row] == ("false_positive", 1)
    assert client.request("POST", f"/api/v2/detections/{row}/lock", {"locked": False},
                          browser_headers(client))[0] == 204
    assert client.request("POST", f"/api/v2/detections/{row}/review", {"verified": "correct"},
                          browser_headers(client))[0] == 200
    assert reviews_in_store(store)[row] == ("correct", 0)


def test_batch_review_skips_locked_and_unknown_detections(station):
    store, _, client = station
    locked, free = store.ids[3], store.ids[4:7]
    client.request("POST", f"/api/v2/detections/{locked}/lock", {"locked": True}, browser_headers(client))
    ids = [str(i) for i in free] + [str(locked), "999999"]
    status, payload = client.request("POST", "/api/v2/detections/batch/review",
                                     {"ids": ids, "verified": "false_positive"}, browser_headers(client))
    assert (status, payload) == (200, {"processed": 3, "skipped": 2})
    reviews = reviews_in_store(store)
    assert all(reviews[i] == ("false_positive", 0) for i in free) and reviews[locked] == (None, 1)
    listed = client.get("/api/v2/detections?verified=false_positive&limit=100")["data"]
    assert {d["id"] for d in listed} >= set(free) and all(d["verified"] == "false_positive" for d in listed)
    assert [d["id"] for d in client.get("/api/v2/detections?locked=true")["data"]] == [locked]
    unreviewed = client.get("/api/v2/detections?verified=unverified")["data"]
    assert unreviewed and all(d["verified"] == "unverified" for d in unreviewed)


@pytest.mark.parametrize("body, message", [
    ({"verified": "maybe"}, "verified"),
    ({"verified": "correct", "colour": "red"}, "unknown field"),
    ({"lock_detection": "yes"}, "lock_detection"),
    ({"verified": "false_positive", "ignoreSpecies": "House Sparrow"}, "ignoreSpecies"),
])
def test_bad_bodies_are_one_line_400s(station, body, message):
    store, _, client = station
    status, payload = client.request("POST", f"/api/v2/detections/{store.ids[7]}/review", body,
                                     browser_headers(client))
    assert status == 400 and message in payload["message"]
    status, payload = client.request("POST", f"/api/v2/detections/{store.ids[7]}/review", raw=b"{not json",
                                     headers=browser_headers(client))
    assert status == 400 and "JSON" in payload["message"]


def test_unknown_detection_is_404_and_a_read_only_server_refuses_posts(station, tmp_path):
    store, _, client = station
    assert client.request("POST", "/api/v2/detections/999999/review", {"verified": "correct"},
                          browser_headers(client))[0] == 404
    server = ServerThread(web_config(store))  # the default: read_only = true
    try:
        status, payload = Client(server.url).request("POST", f"/api/v2/detections/{store.ids[0]}/review",
                                                     {"verified": "correct"})
        assert status == 405 and "read-only" in payload["message"]
    finally:
        server.stop()


def test_aiobirdnetgo_reads_the_review_fields(station):
    """The third-party client has no review calls; it reads ``verified`` and ``locked`` of what was reviewed."""
    from aiobirdnetgo import BirdNetGoClient

    store, _, client = station
    row = store.ids[8]
    client.request("POST", f"/api/v2/detections/{row}/review", {"verified": "correct", "lock_detection": True},
                   {"Authorization": f"Bearer {TOKEN_FILE_TEXT}"})

    async def read():
        async with BirdNetGoClient(client.host, client.port, api_key=TOKEN_FILE_TEXT) as birdnet:
            return await birdnet.get_detection(row), await birdnet.get_recent_detections(limit=50)

    one, recent = asyncio.run(read())
    assert (one.verified, one.locked) == ("correct", True)
    assert next(d for d in recent if d.id == row).verified == "correct"
