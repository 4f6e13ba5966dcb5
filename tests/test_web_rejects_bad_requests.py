"""Every query parameter is validated: a bad one is a 400 with one line of JSON naming it, never a trace."""

from __future__ import annotations

import http.client
import json
import socket
import urllib.request

import pytest
from web_fixtures import ServerThread, fill_store, web_config


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    import numpy as np
    store = fill_store(tmp_path_factory.mktemp("station"), np.random.default_rng(7), count=6)
    server = ServerThread(web_config(store))
    yield server.url
    server.stop()


def status_and_body(url: str, method: str = "GET") -> tuple[int, bytes]:
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.mark.parametrize(("path", "names"), [
    ("/detections?limit=0", "limit"),
    ("/detections?limit=1001", "limit"),
    ("/detections?limit=-1", "limit"),
    ("/detections?limit=1e3", "limit"),
    ("/detections?numResults=abc", "numResults"),
    ("/detections?offset=-5", "offset"),
    ("/detections?date=2026-02-30", "date"),
    ("/detections?date=2026-1-5", "date"),
    ("/detections?date=yesterday", "date"),
    ("/detections?confidence=%3E%3D101", "confidence"),
    ("/detections?confidence=%3E%3Dnan", "confidence"),
    ("/detections?confidence=%21%3D50", "confidence"),
    ("/detections?min_confidence=-1", "min_confidence"),
    ("/detections?hour=24", "hour"),
    ("/detections?hour=9-6", "hour"),
    ("/detections?sortBy=species_asc%27--", "sortBy"),
    ("/detections?queryType=search", "queryType"),
    ("/detections?includeWeather=yes", "includeWeather"),
    ("/detections?limit=5&limit=6", "limit"),
    ("/detections?search=robin", "search"),
    ("/detections/recent?limit=x", "limit"),
    ("/detections/recent?source=mic", "source"),
    ("/analytics/species/daily?date=2026-13-01", "date"),
    ("/analytics/species/daily?min_confidence=inf", "min_confidence"),
    ("/analytics/species/summary?start_date=2026-12-02&end_date=2026-12-01", "start_date"),
    ("/analytics/species/summary?limit=many", "limit"),
    ("/spectrogram/1?size=huge", "size"),
    ("/spectrogram/1?raw=1", "raw"),
    ("/audio/1?path=/etc/passwd", "path"),
    ("/ping?x=1", "x"),
    ("/detections?date=%ff", "date"),
    ("/detections?a", "query string"),
    ("/detections?" + "x" * 3000, "query string"),
])
def test_bad_parameter_is_a_one_line_400_naming_it(url, path, names):
    status, body = status_and_body(url + "/api/v2" + path)
    assert status == 400, body
    assert body.count(b"\n") == 0 and b"Traceback" not in body
    error = json.loads(body)
    assert error["code"] == 400 and error["message"] == error["error"]
    assert names in error["error"] or "malformed" in error["error"], error


@pytest.mark.parametrize(("method", "expected"), [("POST", 405), ("DELETE", 405), ("PUT", 405), ("PATCH", 405)])
def test_writes_are_refused(url, method, expected):
    status, body = status_and_body(url + "/api/v2/detections/1", method)
    assert status == expected and json.loads(body)["code"] == expected


@pytest.mark.parametrize("path", ["/api/v2/detections/abc", "/api/v2/detections/1/", "/api/v2/nothing",
                                  "/api/v2/detections/99999999999999999999", "/index.html", "/static/",
                                  "/static/../../etc/passwd", "/api/v2/control/restart"])
def test_unknown_paths_are_json_404s(url, path):
    status, body = status_and_body(url + path)
    assert status == 404 and json.loads(body)["code"] == 404


def test_a_malformed_request_line_gets_json_too(url):
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"GET /a b HTTP/1.1\r\n\r\n")
        reply = b""
        while chunk := sock.recv(4096):  # the server closes the connection after the error
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400") and json.loads(body)["code"] == 400


def test_head_has_the_headers_and_no_body(url):
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request("HEAD", "/api/v2/detections/recent")
    response = conn.getresponse()
    assert response.status == 200 and int(response.headers["Content-Length"]) > 2 and response.read() == b""
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    conn.close()


def test_an_internal_fault_is_a_500_without_a_trace(url, monkeypatch, caplog):
    from daemon.web.api import BirdnetGoApi

    def broken(self, query, authenticated):
        raise RuntimeError("secret internals at /var/lib/birdd")

    monkeypatch.setattr(BirdnetGoApi, "kpis", broken)
    status, body = status_and_body(url + "/api/v2/dashboard/kpis")
    assert (status, json.loads(body)) == (500, {"error": "internal error", "message": "internal error", "code": 500})
    assert b"secret" not in body and b"Traceback" not in body
    assert "secret internals" in caplog.text  # the operator sees it in the journal


def test_a_refused_request_body_is_never_read_as_the_next_request(url):
    host, port = url.removeprefix("http://").split(":")
    smuggled = b"GET /api/v2/ping HTTP/1.1\r\nHost: x\r\n\r\n"
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"POST /api/v2/detections HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"
                     % (len(smuggled), smuggled))
        reply = b""
        while chunk := sock.recv(4096):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 405") and b"Connection: close" in reply
    assert reply.count(b"HTTP/1.1") == 1  # the body was not answered as a request of its own
