"""BirdWeather: each detection's soundscape (FLAC), then the detection referring to it (docs/integrations.md).

API v1 with the station token in the path (``https://app.birdweather.com/api/v1``):

1. ``POST /stations/{token}/soundscapes?timestamp=<ISO 8601>&type=flac``, the FLAC file as the body
   (``application/octet-stream``); the answer is ``{"success": true, "soundscape": {"id": N, ...}}``;
2. ``POST /stations/{token}/detections`` with JSON ``timestamp, lat, lon, soundscapeId, soundscapeStartTime,
   soundscapeEndTime, commonName, scientificName, algorithm, confidence`` (start and end: seconds into the
   soundscape); the answer is 201.

The soundscape is the clip the detection store keeps (``clips.dir``; an Ogg clip is re-encoded to FLAC): a clip
still being written is waited for (up to :data:`CLIP_WAIT_S`); a detection whose clip the store gave up or never
had is passed over (counted in ``no_clip``). A
soundscape once uploaded is remembered for its detection, so a retry after a failed detection POST does not
upload it twice. The token is never logged: it is in every URL, and no message here carries a URL.
"""

from __future__ import annotations

import io
import json
import logging
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import soundfile

from daemon.config import BirdWeatherConfig, ClipsConfig, StationConfig
from daemon.constants import WINDOW_SECONDS
from daemon.errors import ConfigError
from daemon.outbound.base import Refused, RetryLater
from daemon.outbound.http_post import post
from daemon.store.writer import epoch_of

log = logging.getLogger(__name__)

CLIP_WAIT_S = 120.0
"""how long after a detection its clip may still be on its way (written by the clip worker): retried until then"""
_MEMORY = 64  # soundscape ids remembered for detections whose detection POST has not succeeded yet


def local_iso(epoch: float) -> str:
    """ISO 8601 in the station's time zone with milliseconds and offset, as BirdNET-Go sends it."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(epoch)) + f".{int(epoch * 1000) % 1000:03d}" + \
        time.strftime("%z", time.localtime(epoch))


def flac_bytes(path: Path) -> bytes:
    """The clip as FLAC: read as it is, or decoded and re-encoded (Ogg/Opus)."""
    if path.suffix == ".flac":
        return path.read_bytes()
    samples, rate = soundfile.read(path, dtype="int16")
    out = io.BytesIO()
    soundfile.write(out, samples, rate, format="FLAC", subtype="PCM_16")
    return out.getvalue()


def read_token(config: BirdWeatherConfig) -> str:
    """The station token: ``token``, else the first line of ``token_file``."""
    if config.token:
        return config.token
    try:
        token = Path(config.token_file).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"birdweather.token_file: cannot read {config.token_file}: {exc}") from None
    if not token:
        raise ConfigError(f"birdweather.token_file: {config.token_file} is empty")
    return token


class BirdWeatherTarget:
    """Uploads one detection with its soundscape to one BirdWeather station."""

    name = "birdweather"

    def __init__(self, config: BirdWeatherConfig, clips: ClipsConfig, station: StationConfig,
                 store: sqlite3.Connection | None = None, *, clock: Callable[[], float] = time.time) -> None:
        self._config = config
        self._base = f"{config.url.rstrip('/')}/api/v1/stations/{quote(read_token(config), safe='')}"
        self._clips = Path(clips.dir)
        self._margin_s = clips.margin_s
        self._station = station
        self._store = store
        self._clock = clock
        self._soundscapes: dict[str, tuple[int, float]] = {}  # detection_id -> (soundscape id, window offset)
        self.no_clip = 0
        """detections passed over because their clip was not kept (or never made)"""

    def send(self, payload: dict[str, Any]) -> bool:
        """Soundscape, then detection; False (passed over) below ``min_confidence`` or without a clip."""
        if payload["confidence"] < self._config.min_confidence:
            return False
        detection_id = payload["detection_id"]
        soundscape = self._soundscapes.get(detection_id)
        if soundscape is None:
            clip = self._clip(payload)
            if clip is None:
                return False
            audio, seconds = clip
            soundscape = self._upload_soundscape(payload, audio)
            if len(self._soundscapes) >= _MEMORY:
                del self._soundscapes[next(iter(self._soundscapes))]
            self._soundscapes[detection_id] = soundscape, self._window_offset(seconds)
        self._post_detection(payload, *self._soundscapes[detection_id])
        del self._soundscapes[detection_id]
        return True

    def _window_offset(self, seconds: float) -> float:
        """Where the window starts in a clip of ``seconds``: after the margin, unless the stream began inside it."""
        return max(0.0, min(self._margin_s, seconds - WINDOW_SECONDS - self._margin_s))

    def _clip(self, payload: dict[str, Any]) -> tuple[bytes, float] | None:
        """The clip as FLAC and its length (seconds), or None if there is none; RetryLater while it may come."""
        name = payload.get("clip")
        path = self._clips / name if name else None
        if path is not None and path.is_file():
            try:
                return flac_bytes(path), soundfile.info(path).duration
            except (OSError, soundfile.LibsndfileError) as exc:
                raise RetryLater(f"cannot read the clip {path}: {exc}") from None
        if path is not None and self._clip_may_come(payload.get("id")) and \
                self._clock() - epoch_of(payload["end"]) < CLIP_WAIT_S:
            raise RetryLater(f"waiting for the clip {path}")
        self.no_clip += 1
        log.info("birdweather: detection %s has no clip (not kept, or clips are off): not uploaded",
                 payload["detection_id"])
        return None

    def _clip_may_come(self, row_id: int | None) -> bool:
        """False once the detection store says the clip will never be there (given up, evicted, lost in a crash);
        True while it is planned and not written yet, or when the store cannot tell."""
        if self._store is None or row_id is None:
            return True
        try:
            row = self._store.execute("SELECT clip, clip_bytes FROM detections WHERE id = ?", (row_id,)).fetchone()
        except sqlite3.Error:
            return True
        return row is None or (row[0] is not None and row[1] == 0)

    def _upload_soundscape(self, payload: dict[str, Any], audio: bytes) -> int:
        start = epoch_of(payload["start"]) - self._margin_s  # the clip's first sample (give or take a stream start)
        query = urlencode({"timestamp": local_iso(start), "type": "flac"})
        answer = post(f"{self._base}/soundscapes?{query}", audio, {"Content-Type": "application/octet-stream"},
                      self._config.timeout_s)
        try:
            reply = json.loads(answer)
            if not reply.get("success"):
                raise Refused(f"soundscape not accepted: {answer[:200].decode('utf-8', 'replace')}")
            return int(reply["soundscape"]["id"])
        except (ValueError, KeyError, TypeError, AttributeError):
            raise RetryLater(f"soundscape upload: unexpected answer {answer[:200]!r}") from None

    def _post_detection(self, payload: dict[str, Any], soundscape: int, offset: float) -> None:
        body = {"timestamp": local_iso(epoch_of(payload["start"])), "soundscapeId": soundscape,
                "soundscapeStartTime": offset, "soundscapeEndTime": offset + WINDOW_SECONDS,
                "commonName": payload["common_name"], "scientificName": payload["scientific_name"],
                "algorithm": self._config.algorithm, "confidence": round(payload["confidence"], 4)}
        if self._station.latitude is not None and self._station.longitude is not None:
            body.update(lat=self._station.latitude, lon=self._station.longitude)
        post(f"{self._base}/detections", json.dumps(body).encode(), {"Content-Type": "application/json"},
             self._config.timeout_s)
