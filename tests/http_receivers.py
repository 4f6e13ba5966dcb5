"""Real HTTP servers on loopback for the outbound tests: a recording receiver (webhooks, Apprise ``json://``), and a
BirdWeather test server that follows BirdWeather's API v1 (docs/integrations.md says what is documented and what
was observed in BirdNET-Go's and BirdNET-Pi's clients). Each can stop and start again on the same port."""

from __future__ import annotations

import io
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import soundfile

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Request:
    path: str
    headers: dict[str, str]
    body: bytes
    received: float = field(default_factory=time.time)
    """wall-clock time the request arrived"""

    def json(self) -> Any:
        return json.loads(self.body)


Answer = Callable[[Request], tuple[int, bytes]]


class Receiver:
    """Records every POST; ``answer(request) -> (status, body)`` decides the reply (default 200 ``{}``)."""

    def __init__(self, answer: Answer | None = None, port: int = 0) -> None:
        self.answer = answer or (lambda request: (200, b"{}"))
        self.requests: list[Request] = []
        """the requests answered with a 2xx"""
        self.attempts = 0
        """every request, whatever the answer"""
        self.attempt_times: list[float] = []
        """wall-clock time of every request, whatever the answer"""
        self._lock = threading.Lock()
        self.port = port
        self._server: ThreadingHTTPServer | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                request = Request(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                status, reply = receiver.answer(request)
                with receiver._lock:
                    receiver.attempts += 1
                    receiver.attempt_times.append(request.received)
                    if 200 <= status < 300:
                        receiver.requests.append(request)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer((HOST, self.port), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()

    def stop(self) -> None:
        """Close the listening socket: connections are refused until :meth:`start`."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def accepted(self, path: str | None = None) -> list[Request]:
        """The requests answered with a 2xx, in arrival order."""
        with self._lock:
            return [r for r in self.requests if path is None or r.path.startswith(path)]

    def wait_for(self, predicate: Callable[[list[Request]], bool], timeout: float = 15.0) -> list[Request]:
        deadline = time.monotonic() + timeout
        while not predicate(requests := self.accepted()):
            if time.monotonic() > deadline:
                raise AssertionError(f"timeout after {timeout} s: {len(requests)} request(s), last {requests[-2:]}")
            time.sleep(0.02)
        return requests


_DETECTION_FIELDS = ("timestamp", "soundscapeId", "soundscapeStartTime", "soundscapeEndTime", "commonName",
                     "scientificName", "algorithm", "confidence")


class BirdWeatherServer(Receiver):
    """BirdWeather's station API v1 for one station token: soundscapes (FLAC bodies) and detections referring to
    them; a wrong token is 403, a detection without a field or with an unknown soundscape is 422."""

    def __init__(self, token: str, port: int = 0) -> None:
        self.token = token
        self.soundscapes: dict[int, dict[str, Any]] = {}
        self.detections: list[dict[str, Any]] = []
        self.down_status: int | None = None
        """answer every request with this status (503, ...) while set"""
        super().__init__(self._answer, port)

    def _answer(self, request: Request) -> tuple[int, bytes]:
        if self.down_status is not None:
            return self.down_status, b'{"success": false}'
        url = urlsplit(request.path)
        match = re.fullmatch(r"/api/v1/stations/([^/]+)/(soundscapes|detections)", url.path)
        if match is None:
            return 404, b'{"success": false, "message": "Not found"}'
        if match.group(1) != self.token:
            return 403, b'{"success": false, "message": "Forbidden"}'
        if match.group(2) == "soundscapes":
            return self._soundscape(parse_qs(url.query), request.body)
        return self._detection(request.json())

    def _soundscape(self, query: dict[str, list[str]], body: bytes) -> tuple[int, bytes]:
        try:
            info = soundfile.info(io.BytesIO(body))
        except soundfile.LibsndfileError:
            return 422, b'{"success": false, "errors": {"file": ["is not audio"]}}'
        if "timestamp" not in query or query.get("type") != ["flac"] or info.format != "FLAC":
            return 422, b'{"success": false, "errors": {"timestamp": ["can\'t be blank"]}}'
        soundscape = {"id": len(self.soundscapes) + 1, "stationId": 1, "timestamp": query["timestamp"][0],
                      "url": None, "filesize": len(body), "extension": "flac", "duration": info.duration}
        self.soundscapes[soundscape["id"]] = soundscape
        return 201, json.dumps({"success": True, "soundscape": soundscape}).encode()

    def _detection(self, fields: dict[str, Any]) -> tuple[int, bytes]:
        missing = [name for name in _DETECTION_FIELDS if fields.get(name) in (None, "")]
        if missing:
            errors = {name: ["can't be blank"] for name in missing}
            return 422, json.dumps({"success": False, "errors": errors}).encode()
        if fields["soundscapeId"] not in self.soundscapes:
            return 422, b'{"success": false, "errors": {"soundscape": ["must exist"]}}'
        self.detections.append(fields)
        return 201, json.dumps({"success": True, "detection": {"id": len(self.detections), **fields}}).encode()
