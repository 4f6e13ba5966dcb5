"""BirdNET-Go's review endpoints (``POST /api/v2/detections/{id}/review``, ``.../{id}/lock``,
``/detections/batch/review``): request checks and bodies; the writes go through :class:`ReviewWriter`.

Only an authenticated request reaches here (the server refuses the others with 401). A browser sends
basic-auth credentials by itself, also on a request another site's page makes it send, so a write is
refused unless it cannot be cross-site (:func:`cross_site_refusal`): an ``Origin`` other than this server's
(or a ``Sec-Fetch-Site`` of another site) is refused; without a bearer token (which a browser never adds by
itself) the request must carry the page's CSRF token in ``X-CSRF-Token``, which only this server's own page
can read; and the body must be ``application/json``, which a cross-site HTML form cannot send and a
cross-site script cannot send without a CORS preflight this server never grants.
"""

from __future__ import annotations

import hmac
import json
from email.message import Message

from daemon.store.review_writer import MAX_COMMENT_CHARS, VERDICTS, ReviewChange, ReviewRefused, ReviewWriter
from daemon.web.params import BadRequest, HttpError, NotFound

MAX_BODY_BYTES = 64 * 1024
MAX_BATCH = 500
"""ids in one batch review at most (BirdNET-Go's limit)"""
ID_DIGITS = 15


class Forbidden(HttpError):
    """A write that could come from another site, or without the CSRF token (403)."""

    status = 403


class Conflict(HttpError):
    """A locked detection (409, as BirdNET-Go)."""

    status = 409


class UnsupportedMediaType(HttpError):
    """A body that is not JSON (415)."""

    status = 415


class LengthRequired(HttpError):
    """A body without a Content-Length (411)."""

    status = 411


class TooLarge(HttpError):
    """A body over :data:`MAX_BODY_BYTES` (413)."""

    status = 413


def cross_site_refusal(headers: Message, bearer: bool, csrf_token: str) -> str | None:
    """Why a write request is refused as possibly cross-site (None: it is not)."""
    origin = headers.get("Origin")
    host = headers.get("Host", "")
    if origin is not None and origin not in (f"http://{host}", f"https://{host}"):
        return f"cross-site request refused (Origin {origin[:60]!r} is not this server)"
    if headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
        return "cross-site request refused (Sec-Fetch-Site)"
    if not bearer and not hmac.compare_digest(headers.get("X-CSRF-Token", "").encode(), csrf_token.encode()):
        return "invalid CSRF token (send the csrfToken of /api/v2/app/config as X-CSRF-Token)"
    return None


def content_length(headers: Message) -> int:
    """The declared length of a JSON body (411, 413 or 415 when it cannot be accepted)."""
    kind = headers.get("Content-Type", "").split(";")[0].strip().lower()
    if kind != "application/json":
        raise UnsupportedMediaType("the body must be application/json")
    raw = headers.get("Content-Length")
    if raw is None or headers.get("Transfer-Encoding"):
        raise LengthRequired("a Content-Length is required (no chunked bodies)")
    if not raw.isdigit() or len(raw) > ID_DIGITS:
        raise BadRequest("bad Content-Length")
    if int(raw) > MAX_BODY_BYTES:
        raise TooLarge(f"body over {MAX_BODY_BYTES} bytes")
    return int(raw)


def json_object(body: bytes, accepted: dict[str, type]) -> dict:
    """The body as a JSON object holding only ``accepted`` fields of their types (400 naming the field)."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise BadRequest("the body must be a JSON object")
    for name, value in data.items():
        if name not in accepted:
            raise BadRequest(f"unknown field {name[:40]!r} (accepted: {', '.join(accepted)})")
        if not isinstance(value, accepted[name]):
            raise BadRequest(f"{name}: expected {accepted[name].__name__}, got {type(value).__name__}")
    return data


def verdict(value: str, required: bool) -> str | None:
    """A ``verified`` value: one of :data:`VERDICTS` ("" = none, unless ``required``)."""
    if value == "" and not required:
        return None
    if value not in VERDICTS:
        raise BadRequest(f"verified: expected {' or '.join(VERDICTS)}, got {value[:40]!r}")
    return value


class ReviewApi:
    """The three write endpoints; each takes the request body and returns ``(status, payload or None)``."""

    def __init__(self, writer: ReviewWriter):
        self.writer = writer

    def review(self, body: bytes, detection_id: int) -> tuple[int, dict | None]:
        """BirdNET-Go's ``DetectionRequest``: ``verified``, ``lock_detection``, ``comment`` (``locked`` is
        accepted and ignored, as there; ``ignoreSpecies`` only empty: birdd's species lists live in config.toml)."""
        data = json_object(body, {"verified": str, "lock_detection": bool, "locked": bool, "comment": str,
                                  "ignoreSpecies": str})
        if data.get("ignoreSpecies"):
            raise BadRequest("ignoreSpecies: not supported (add the species to detection.exclude in config.toml)")
        comment = data.get("comment", "").strip()
        if len(comment) > MAX_COMMENT_CHARS:
            raise BadRequest(f"comment: longer than {MAX_COMMENT_CHARS} characters")
        change = ReviewChange(verdict(data.get("verified", ""), required=False),
                              data.get("lock_detection", False), comment or None)
        self._write(self.writer.review, detection_id, change)
        return 200, {"status": "success"}

    def lock(self, body: bytes, detection_id: int) -> tuple[int, dict | None]:
        """``{"locked": true|false}``: lock, or unlock (the one change a locked detection accepts)."""
        data = json_object(body, {"locked": bool})
        if "locked" not in data:
            raise BadRequest("locked: required (true or false)")
        self._write(self.writer.set_lock, detection_id, data["locked"])
        return 204, None

    def batch_review(self, body: bytes) -> tuple[int, dict | None]:
        """``{"ids": [...], "verified": ...}``: ``processed`` and ``skipped`` (locked or unknown) counts."""
        data = json_object(body, {"ids": list, "verified": str})
        ids = data.get("ids") or []
        if not ids:
            raise BadRequest("ids: at least one detection id is required")
        if len(ids) > MAX_BATCH:
            raise BadRequest(f"ids: at most {MAX_BATCH} per batch")
        row_ids = [_detection_id(value) for value in ids]
        processed, skipped = self.writer.review_many(row_ids, verdict(data.get("verified", ""), required=True))
        return 200, {"processed": processed, "skipped": skipped}

    @staticmethod
    def _write(method, detection_id: int, argument) -> None:
        try:
            method(detection_id, argument)
        except ReviewRefused as exc:
            raise (NotFound if exc.status == 404 else Conflict)(str(exc)) from None


def _detection_id(value: object) -> int:
    """A batch id: an integer, or its decimal string (BirdNET-Go sends strings)."""
    text = str(value) if isinstance(value, int | str) and not isinstance(value, bool) else ""
    if not text.isdigit() or len(text) > ID_DIGITS:
        raise BadRequest(f"ids: {str(value)[:40]!r} is not a detection id")
    return int(text)
