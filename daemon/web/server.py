"""``birdd web``: the page at ``/`` and the BirdNET-Go-compatible ``/api/v2`` on the standard library's threading
HTTP server (chosen by measurement: docs/web.md). It reads the store through read-only connections; with
``web.read_only = false`` its review endpoints, and only they, write reviews for authenticated clients
(:mod:`daemon.web.review`).

Only fixed routes exist: the page's few files (held in memory), and API paths whose only variable is an
integer detection id. A clip or spectrogram is reached through that id and the store, never through a path
from the request. Every error is one line of JSON (``{"error", "message", "code"}`` as BirdNET-Go), with no
stack trace; unexpected faults are logged with their traceback and answered 500.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import socket
import sys
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from urllib.parse import urlsplit

from daemon import __version__
from daemon.config import Config
from daemon.errors import StoreError, WebError
from daemon.service.sdnotify import notify
from daemon.service.signal_flags import SignalFlags
from daemon.store.review_writer import ReviewWriter
from daemon.store.sound_levels import LatestLevelsReader, latest_levels_path
from daemon.store.source_health import health_path
from daemon.web.api import BirdnetGoApi, Unhealthy
from daemon.web.auth import Authenticator
from daemon.web.media import OpenMedia
from daemon.web.params import BadRequest, HttpError, NotFound, Query
from daemon.web.pool import StorePool
from daemon.web.review import ReviewApi, content_length, cross_site_refusal
from daemon.web.sse import DetectionStream

log = logging.getLogger(__name__)

API = "/api/v2"
DETECTION_PARAMS = frozenset({"limit", "numResults", "offset", "date", "species", "confidence", "min_confidence",
                              "hour", "queryType", "sortBy", "includeWeather", "source", "verified", "locked"})
ROUTES: list[tuple[re.Pattern[str], str, frozenset[str]]] = [
    (re.compile(API + path + "$"), method, frozenset(params)) for path, method, params in [
        ("/ping", "ping", ()),
        ("/health", "health", ()),
        ("/detections", "detections", DETECTION_PARAMS),
        ("/detections/recent", "recent", ("limit", "includeWeather")),
        ("/detections/stream", "stream", ()),
        (r"/detections/([0-9]{1,15})", "detection", ("includeWeather",)),
        ("/analytics/species/daily", "species_daily", ("date", "min_confidence", "limit")),
        ("/analytics/species/summary", "species_summary", ("start_date", "end_date", "limit")),
        ("/dashboard/kpis", "kpis", ()),
        ("/system/info", "system_info", ()),
        ("/streams/health", "streams_health", ()),
        ("/streams/status", "streams_status", ()),
        ("/app/config", "app_config", ()),
        (r"/audio/([0-9]{1,15})", "audio", ()),
        (r"/spectrogram/([0-9]{1,15})", "spectrogram", ("size", "raw")),
    ]]
POST_ROUTES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(API + path + "$"), method) for path, method in [
        (r"/detections/([0-9]{1,15})/review", "review"),
        (r"/detections/([0-9]{1,15})/lock", "lock"),
        ("/detections/batch/review", "batch_review"),
    ]]
"""the review endpoints (with ``web.read_only = false``, authenticated only)"""
PUBLIC = frozenset({"ping"})
"""API methods answered without authentication (no data in them)"""
STATIC_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; media-src 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
}
REQUEST_TIMEOUT_S = 30
"""an idle or slow connection is closed after this long (a stalled client cannot hold a thread)"""
STOP_POLL_S = 0.2
"""how often the main thread looks at the stop flag SIGTERM/SIGINT set"""
MAX_CONNECTIONS = 64
"""connections served at once; more are refused with 503"""
CHUNK = 64 * 1024
WRITE_BUFFER = 64 * 1024
RANGE = re.compile(r"^bytes=([0-9]{0,15})-([0-9]{0,15})$")


def load_static() -> dict[str, tuple[bytes, str]]:
    """The page's files, by URL path (``/`` is index.html), read once from the package."""
    files = {}
    for entry in resources.files("daemon.web").joinpath("static").iterdir():
        suffix = Path(entry.name).suffix
        if suffix in STATIC_TYPES:
            files[f"/static/{entry.name}"] = (entry.read_bytes(), STATIC_TYPES[suffix])
    files["/"] = files.pop("/static/index.html")
    return files


class WebServer(ThreadingHTTPServer):
    """The HTTP server: one thread per connection, at most :data:`MAX_CONNECTIONS` at once."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, config: Config):
        self.config = config
        self.store = StorePool(config.store.path)
        self.auth = Authenticator.from_config(config.web)
        self.csrf_token = secrets.token_urlsafe(32)
        """handed to authenticated clients by ``/api/v2/app/config``; new at every start"""
        self.reviews = None if config.web.read_only else ReviewApi(ReviewWriter(config.store.path,
                                                                                config.clips.dir))
        self.api = BirdnetGoApi(self.store, Path(config.clips.dir), health_path(config.store.path),
                                csrf_token=self.csrf_token,
                                auth_required=self.auth.required, reviews_enabled=self.reviews is not None)
        self.static = load_static()
        self.stopping = threading.Event()
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self._streams = threading.BoundedSemaphore(config.web.max_streams)
        self._stream_count = 0
        self._count_lock = threading.Lock()
        if ":" in config.web.bind:
            self.address_family = socket.AF_INET6
        super().__init__((config.web.bind, config.web.port), RequestHandler)

    @property
    def url(self) -> str:
        """The base URL the server answers on."""
        host, port = self.server_address[:2]
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def process_request(self, request, client_address):
        if not self._slots.acquire(blocking=False):
            log.warning("refusing a connection from %s: %d connections open", client_address[0], MAX_CONNECTIONS)
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request, client_address) -> None:
        """A client that went away is routine (debug); anything else is logged with its traceback, never printed."""
        error = sys.exc_info()[1]
        if isinstance(error, (BrokenPipeError, ConnectionResetError, TimeoutError)):
            log.debug("connection from %s ended: %s", client_address[0], error)
        else:
            log.exception("request from %s failed", client_address[0])

    def stream_clients(self) -> int:
        """Live streams open now."""
        return self._stream_count

    def open_stream(self) -> bool:
        """Take a stream slot (False when ``web.max_streams`` are open)."""
        if not self._streams.acquire(blocking=False):
            return False
        with self._count_lock:
            self._stream_count += 1
        return True

    def close_stream(self) -> None:
        """Give a stream slot back."""
        with self._count_lock:
            self._stream_count -= 1
        self._streams.release()

    def stop(self) -> None:
        """Stop serving (call from another thread than ``serve_forever``); streams end at their next poll."""
        self.stopping.set()
        self.shutdown()
        self.server_close()
        self.store.close()
        if self.reviews is not None:
            self.reviews.writer.close()

    def upgrade_store(self) -> None:
        """Open the review writer now, so an older store is upgraded at start (logged if it cannot be yet)."""
        if self.reviews is not None:
            try:
                self.reviews.writer.open()
            except StoreError as exc:
                log.warning("reviews: %s (tried again at the first review)", exc)


class RequestHandler(BaseHTTPRequestHandler):
    """GET and HEAD; POST to the review endpoints when reviews are on; everything else is 405."""

    server: WebServer
    protocol_version = "HTTP/1.1"
    server_version = f"birdd/{__version__}"
    timeout = REQUEST_TIMEOUT_S
    wbufsize = WRITE_BUFFER
    """buffered: a response's headers and small body leave in one segment (flushed after each request)"""

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no Nagle wait on small replies

    def do_GET(self) -> None:
        self._answer(self._route)

    def do_POST(self) -> None:
        if self.server.reviews is None:
            self._not_allowed()
        else:
            self._answer(self._post)

    def _answer(self, handle) -> None:
        try:
            handle()
        except HttpError as exc:
            self._error(exc.status, str(exc))
        except StoreError as exc:
            log.warning("%s: %s", self.path, exc)
            self._error(HTTPStatus.SERVICE_UNAVAILABLE, "the detection store is not available")
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            self.close_connection = True
        except Exception:
            log.exception("internal error on %s", self.path)
            self._error(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error")

    do_HEAD = do_GET

    def _not_allowed(self) -> None:
        self.close_connection = True  # a request body may follow, unread: never parse it as the next request
        what = "birdd web is read-only" if self.server.reviews is None else "only the review endpoints take POST"
        self._error(HTTPStatus.METHOD_NOT_ALLOWED, f"{self.command} not allowed: {what}",
                    {"Allow": "GET, HEAD" if self.server.reviews is None else "GET, HEAD, POST"})

    do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _not_allowed

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The standard library's own errors (bad request line, headers too long, ...) as one line of JSON."""
        self.close_connection = True
        self._error(code, message or HTTPStatus(code).phrase)

    def version_string(self) -> str:
        """The ``Server`` header: birdd and its version, nothing about Python."""
        return self.server_version

    def log_message(self, format: str, *args) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def _route(self) -> None:
        parts = urlsplit(self.path)
        path = parts.path
        if path in self.server.static:
            body, content_type = self.server.static[path]
            self._send(HTTPStatus.OK, body, content_type, {"Cache-Control": "no-cache"})
            return
        method, accepted, ids = find_route(path)
        authenticated = self.server.auth.accepts(self.headers.get("Authorization"))
        if self.server.auth.required and not authenticated and method not in PUBLIC:
            self._error(HTTPStatus.UNAUTHORIZED, "authentication required",
                        {"WWW-Authenticate": self.server.auth.challenge()})
            return
        query = Query(parts.query, accepted)
        if method == "stream":
            self._stream(authenticated)
            return
        result = getattr(self.server.api, method)(query, authenticated, *ids)
        if isinstance(result, OpenMedia):
            self._send_media(result)
        elif isinstance(result, Unhealthy):
            self._send_json(HTTPStatus.SERVICE_UNAVAILABLE, result.body)
        else:
            self._send_json(HTTPStatus.OK, result)

    def _post(self) -> None:
        """A review endpoint: authenticated, not cross-site, a JSON body; the body is read only then."""
        self.close_connection = True  # until the body is read: an early answer must not leave it to be parsed
        path = urlsplit(self.path).path
        method, ids = find_post_route(path)
        authorization = self.headers.get("Authorization")
        if not self.server.auth.accepts(authorization):
            self._error(HTTPStatus.UNAUTHORIZED, "authentication required",
                        {"WWW-Authenticate": self.server.auth.challenge()})
            return
        bearer = (authorization or "").strip().lower().startswith("bearer ")
        refusal = cross_site_refusal(self.headers, bearer, self.server.csrf_token)
        if refusal:
            log.warning("review from %s refused: %s", self.address_string(), refusal)
            self._error(HTTPStatus.FORBIDDEN, refusal)
            return
        body = self.rfile.read(content_length(self.headers))
        self.close_connection = False
        status, payload = getattr(self.server.reviews, method)(body, *ids)
        log.info("review %s %s by %s", method, ids or "", self.address_string())
        if payload is None:
            self._head(status, "application/json; charset=utf-8", 0, {"Cache-Control": "no-store"})
        else:
            self._send_json(status, payload)

    def _stream(self, authenticated: bool) -> None:
        if not self.server.open_stream():
            self._error(HTTPStatus.SERVICE_UNAVAILABLE, "too many live streams open")
            return
        try:
            last_event = self.headers.get("Last-Event-ID", "")
            self.close_connection = True
            self.send_response(HTTPStatus.OK)
            for name, value in {"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                "X-Accel-Buffering": "no", "Connection": "close", **SECURITY_HEADERS}.items():
                self.send_header(name, value)
            self.end_headers()
            if self.command == "HEAD":
                return
            stream = DetectionStream(self.server.store, self.server.config.web.sse_poll_s, authenticated,
                                     self.server.stopping, self.server.stream_clients,
                                     LatestLevelsReader(latest_levels_path(self.server.config.store.path)))
            stream.run(self._write_flush, int(last_event) if last_event.isdigit() and len(last_event) < 16 else None)
        finally:
            self.server.close_stream()

    def _write_flush(self, data: bytes) -> None:
        self.wfile.write(data)
        self.wfile.flush()

    def _send_media(self, media: OpenMedia) -> None:
        try:
            start, end = 0, media.size - 1
            status = HTTPStatus.OK
            headers = {"Accept-Ranges": "bytes", "Cache-Control": "private, max-age=3600",
                       "Content-Disposition": f'inline; filename="{media.name}"'}
            wanted = self.headers.get("Range")
            if wanted and media.size:
                start, end = _byte_range(wanted, media.size)
                status = HTTPStatus.PARTIAL_CONTENT
                headers["Content-Range"] = f"bytes {start}-{end}/{media.size}"
            length = max(0, end - start + 1)
            self._head(status, media.content_type, length, headers)
            if self.command == "HEAD":
                return
            os.lseek(media.fd, start, os.SEEK_SET)
            while length > 0:
                chunk = os.read(media.fd, min(CHUNK, length))
                if not chunk:
                    raise ConnectionResetError("file shrank while sending")  # drop the connection
                self.wfile.write(chunk)
                length -= len(chunk)
        finally:
            media.close()

    def _send_json(self, status: int, payload, headers: dict[str, str] | None = None) -> None:
        body = json.dumps(payload, separators=(",", ":"), allow_nan=False).encode()
        self._send(status, body, "application/json; charset=utf-8", {"Cache-Control": "no-store", **(headers or {})})

    def _error(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        text = message.splitlines()[0] if message else HTTPStatus(status).phrase
        self._send_json(status, {"error": text, "message": text, "code": int(status)}, headers)

    def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str]) -> None:
        self._head(status, content_type, len(body), headers)
        if self.command != "HEAD":
            self.wfile.write(body)

    def _head(self, status: int, content_type: str, length: int, headers: dict[str, str]) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(length))
        for name, value in {**SECURITY_HEADERS, **headers}.items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()


def find_route(path: str) -> tuple[str, frozenset[str], list[int]]:
    """The API method, its accepted parameters and the ids in the path; :class:`NotFound` for any other path."""
    for pattern, method, accepted in ROUTES:
        match = pattern.match(path)
        if match:
            return method, accepted, [int(group) for group in match.groups()]
    raise NotFound(f"no such resource: {path[:80]}")


def find_post_route(path: str) -> tuple[str, list[int]]:
    """The review method and the ids in the path; :class:`NotFound` for any other path."""
    for pattern, method in POST_ROUTES:
        match = pattern.match(path)
        if match:
            return method, [int(group) for group in match.groups()]
    raise NotFound(f"no such resource: {path[:80]}")


def _byte_range(header: str, size: int) -> tuple[int, int]:
    """The first and last byte of a single ``Range: bytes=a-b`` (``a-``, ``-n``) within ``size``; else 416."""
    match = RANGE.match(header.strip())
    if not match or match.groups() == ("", ""):
        raise RangeNotSatisfiable(f"unsupported Range {header[:40]!r} (one bytes=a-b range)")
    first, last = match.groups()
    if not first:
        start, end = max(0, size - int(last)), size - 1
    else:
        start, end = int(first), min(size - 1, int(last)) if last else size - 1
    if start > end or start >= size:
        raise RangeNotSatisfiable(f"Range {header[:40]!r} outside the {size} bytes")
    return start, end


class RangeNotSatisfiable(BadRequest):
    """A Range header that cannot be served (416)."""

    status = 416


def run_web(config: Config) -> int:
    """Serve until SIGTERM or SIGINT; returns the exit status (systemd ``Type=notify``)."""
    try:
        server = WebServer(config)
    except OSError as exc:
        raise WebError(f"web.bind/web.port: cannot listen on {config.web.bind}:{config.web.port}: "
                       f"{exc.strerror or exc}") from None
    server.upgrade_store()
    signals = SignalFlags()
    signals.install(reload=False)
    thread = threading.Thread(target=server.serve_forever, name="http", daemon=True)
    thread.start()
    log.info("serving %s (store %s, clips %s, auth %s, %s)", server.url, config.store.path, config.clips.dir,
             config.web.auth, "read-only" if server.reviews is None else "reviews on")
    notify("READY=1", f"STATUS=serving {server.url}")
    while not signals.stop:
        time.sleep(STOP_POLL_S)
    notify("STOPPING=1")
    log.info("stopping")
    server.stop()
    thread.join(5.0)
    return 0
