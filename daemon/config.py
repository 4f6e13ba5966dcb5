"""The daemon's one configuration object, read from TOML and validated at start-up.

Each section is a frozen dataclass; every field has a default, so ``config.toml`` need only name
what it changes. An unknown key, a wrong type or a bad value is a :class:`ConfigError` that names
the key (``mqtt.port: expected int, got str``).
"""

from __future__ import annotations

import math
import re
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from daemon.errors import ConfigError
from daemon.model.windows import BIRDNET_MAX_OVERLAP_S, GRIDS

CLIP_FORMATS = ("flac", "ogg")
"""``clips.format`` values: FLAC, or Opus in an Ogg container"""
MAX_CLIP_MARGIN_S = 5.0
"""upper bound of ``clips.margin_s`` (the ring buffer keeps the window plus twice the margin)"""
MAX_CAPTURE_RATE = 768_000
"""highest device sample rate accepted (hertz)"""
MAX_BLOCK_MS = 10_000
MAX_RING_SECONDS = 600
"""ring buffer bound (seconds): 77 MB of float32 at 32 kHz"""
MAX_DELAY_S = 86_400
"""cap on every configured delay and period (seconds): longer waits overflow the thread timers"""
MAX_THREADS = 64
MINUTES_PER_HOUR = 60
WEB_AUTH_MODES = ("none", "token", "basic")


@dataclass(frozen=True)
class StationConfig:
    name: str = "birdd"
    """station name: goes into every payload and the default topic prefix"""
    latitude: float | None = None
    """degrees north (optional; needed by detection.range_filter)"""
    longitude: float | None = None
    """degrees east (optional; needed by detection.range_filter)"""


@dataclass(frozen=True)
class AudioConfig:
    source: str = "mic"
    """"mic" (sounddevice/PortAudio) or "file" (replay of files or folders)"""
    device: str = ""
    """mic: substring of the input device name ("" = system default); stable across reboots"""
    capture_rate: int = 0
    """mic: sample rate to open the device at (hertz, 0 = the device's default); resampled to the model's"""
    block_ms: int = 100
    """mic: PortAudio block size (milliseconds)"""
    files: list[str] = field(default_factory=list)
    """file: audio files or folders (recursive) to replay"""
    realtime: bool = True
    """file: pace replay at real time (false = as fast as possible)"""
    loop: bool = False
    """file: start again at the end"""
    ring_seconds: float = 30.0
    """capacity of the ring buffer between the audio thread and the tokenizer (seconds)"""
    retry_initial_s: float = 1.0
    """mic: first delay before re-opening a missing or lost device (seconds)"""
    retry_max_s: float = 60.0
    """mic: cap of the exponential back-off (seconds)"""


@dataclass(frozen=True)
class ModelConfig:
    path: str = "/var/lib/birdd/model"
    """model bundle directory (made by ``birdd train``); SIGHUP reloads it"""
    threads: int = 1
    """BLAS / TFLite threads for inference"""


@dataclass(frozen=True)
class DetectionConfig:
    threshold: float = 0.5
    """minimum confidence (0..1) for a detection"""
    species_thresholds: dict[str, float] = field(default_factory=dict)
    """per-species overrides of ``threshold``, by species code"""
    include: list[str] | str = field(default_factory=list)
    """if not empty, only these species are reported: codes, scientific names or BirdNET labels, or the path of
    a species list file (``birdd species -o``)"""
    exclude: list[str] | str = field(default_factory=list)
    """species never reported (the same forms as include)"""
    window_hop_s: float = 5.0
    """hop between 5-s windows (seconds, whole seconds from 1 to 5; 5 = no overlap)"""
    grid: str = "auto"
    """where windows lie: ``birdclef`` (5-s windows, ``window_hop_s`` apart), ``birdnet`` (BirdNET's 3-s chunks,
    ``overlap_s``, ``sensitivity``: a TFLite BirdNET bundle; docs/tflite.md, "BirdNET grid"), or ``auto``
    (``birdnet`` for a zero-shot BirdNET bundle, whose scores are BirdNET's own, else ``birdclef``)"""
    overlap_s: float = 0.0
    """BirdNET grid: overlap of consecutive 3-s chunks (seconds, 0 to 2.9; BirdNET-Pi's default 0)"""
    sensitivity: float = 1.0
    """BirdNET grid: BirdNET's detection sensitivity (0.5 to 1.5; higher gives higher confidences; BirdNET-Pi's
    default 1.0)"""
    range_filter: bool = False
    """report only the species BirdNET's range model expects at station.latitude/longitude in the current week
    (docs/stations.md)"""
    range_threshold: float = 0.03
    """range model occurrence score a species needs to be expected (0..1; BirdNET-Analyzer's sf_thresh)"""


@dataclass(frozen=True)
class MqttConfig:
    enabled: bool = True
    """publish over MQTT (false: detections are only logged and kept in the outbox)"""
    host: str = "localhost"
    """broker host name or address"""
    port: int = 1883
    """broker TCP port"""
    prefix: str = ""
    """topic prefix ("" = ``birdd/<station name>``)"""
    client_id: str = ""
    """MQTT client id ("" = ``birdd-<station name>``)"""
    qos: int = 1
    """QoS of detection messages (0, 1 or 2)"""
    keepalive_s: int = 60
    """MQTT keep-alive (seconds)"""
    username: str = ""
    """user name ("" = anonymous)"""
    password_file: str = ""
    """file holding the password (never put the password itself in this file)"""
    password_env: str = "BIRDD_MQTT_PASSWORD"
    """environment variable holding the password, used when ``password_file`` is empty"""
    tls: bool = False
    """connect with TLS"""
    ca_file: str = ""
    """TLS: CA bundle ("" = system default)"""
    cert_file: str = ""
    """TLS: client certificate (optional)"""
    key_file: str = ""
    """TLS: client key (optional)"""
    publish_windows: bool = False
    """also publish the top-k scores of every window on ``<prefix>/windows`` (QoS 0)"""
    windows_top_k: int = 5
    """how many species per window on ``<prefix>/windows``"""
    status_interval_s: float = 60.0
    """period of the JSON statistics on ``<prefix>/status/stats`` (seconds)"""
    reconnect_min_s: float = 1.0
    """first reconnect delay (seconds); doubles per failure, with jitter"""
    reconnect_max_s: float = 120.0
    """cap of the reconnect delay (seconds)"""
    ha_discovery: bool = True
    """publish Home Assistant MQTT discovery configs (retained) on every connect"""
    ha_prefix: str = "homeassistant"
    """Home Assistant discovery prefix"""


@dataclass(frozen=True)
class OutboxConfig:
    path: str = "/var/lib/birdd/outbox.sqlite"
    """SQLite file holding detections until the broker acknowledges them"""
    max_rows: int = 100_000
    """bound on unacknowledged detections; the oldest are dropped (and counted) beyond it"""
    max_age_days: float = 30.0
    """unacknowledged detections older than this are dropped (and counted)"""


@dataclass(frozen=True)
class StoreConfig:
    enabled: bool = True
    """keep every detection in the detection store (read by ``birdd web``)"""
    path: str = "/var/lib/birdd/detections.sqlite"
    """SQLite file of the detection store"""
    max_age_days: float = 365.0
    """detections older than this are deleted (with their clips)"""
    max_rows: int = 500_000
    """bound on stored detections; the oldest are deleted (with their clips) beyond it"""


@dataclass(frozen=True)
class ClipsConfig:
    enabled: bool = True
    """keep an audio clip and a spectrogram PNG per detection (only while store.enabled)"""
    dir: str = "/var/lib/birdd/clips"
    """directory of the clips and spectrograms (one sub-directory per local day)"""
    format: str = "flac"
    """"flac" (lossless) or "ogg" (Opus in Ogg: about a fifth of the size)"""
    margin_s: float = 1.0
    """audio kept before and after the detection's window (seconds)"""
    max_total_mb: float = 1024.0
    """cap on the clips and spectrograms together (megabytes); the oldest clips are deleted first"""
    max_age_days: float = 30.0
    """clips older than this are deleted (the detection rows stay)"""
    keep_per_species_per_day: int = 10
    """keep only the N most confident clips per species and local day (0 = no limit)"""
    never_species: list[str] = field(default_factory=list)
    """species codes whose detections never get a clip (e.g. ["human1", "dog1"])"""
    min_free_mb: float = 500.0
    """no clip is written while the file system has less free space than this (megabytes; counted)"""


@dataclass(frozen=True)
class ArchiveConfig:
    enabled: bool = False
    """keep a rolling sample of the raw audio as FLAC files, for a later ``birdd distill`` (docs/distill.md)"""
    dir: str = "/var/lib/birdd/archive"
    """directory of the audio files (one sub-directory per UTC day)"""
    minutes_per_hour: int = 5
    """minutes of audio kept per hour (1..60), spread evenly over the hour"""
    max_total_mb: float = 2048.0
    """cap on the archive (megabytes); the oldest files are deleted first (about 1.8 MB per minute)"""
    min_free_mb: float = 500.0
    """no file is written while the file system would be left with less free space (megabytes; counted)"""


@dataclass(frozen=True)
class WebConfig:
    bind: str = "127.0.0.1"
    """address ``birdd web`` listens on ("0.0.0.0" = every interface)"""
    port: int = 8080
    """TCP port of the page and the ``/api/v2`` API (8080, as BirdNET-Go)"""
    auth: str = "none"
    """"none", "token" (``Authorization: Bearer <password>``) or "basic" (user name and password)"""
    username: str = ""
    """basic auth: the user name"""
    password_file: str = ""
    """file holding the token or password (never put it in this file)"""
    password_env: str = "BIRDD_WEB_PASSWORD"
    """environment variable holding the token or password, used when ``password_file`` is empty"""
    read_only: bool = True
    """serve the store read-only (the only mode: nothing in the API writes)"""
    sse_poll_s: float = 0.25
    """how often the live stream looks for new detections in the store (seconds)"""
    max_streams: int = 16
    """bound on simultaneous live-stream (SSE) clients; more get 503"""


@dataclass(frozen=True)
class MetricsConfig:
    port: int = 0
    """Prometheus metrics port (0 = off)"""
    bind: str = "127.0.0.1"
    """address the metrics endpoint listens on"""


@dataclass(frozen=True)
class LoggingConfig:
    level: str = "INFO"
    """DEBUG, INFO, WARNING or ERROR"""


@dataclass(frozen=True)
class Config:
    station: StationConfig = field(default_factory=StationConfig)
    audio: AudioConfig = field(default_factory=AudioConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    detection: DetectionConfig = field(default_factory=DetectionConfig)
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    outbox: OutboxConfig = field(default_factory=OutboxConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    clips: ClipsConfig = field(default_factory=ClipsConfig)
    archive: ArchiveConfig = field(default_factory=ArchiveConfig)
    web: WebConfig = field(default_factory=WebConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)

    @property
    def topic_prefix(self) -> str:
        """The MQTT topic prefix in force."""
        return self.mqtt.prefix or f"birdd/{self.station.name}"


def load_config(path: str | Path) -> Config:
    """Read and validate a TOML configuration file."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        config = config_from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return config


def config_from_dict(data: dict[str, Any]) -> Config:
    """Build a validated :class:`Config` from a parsed TOML table."""
    sections = {}
    hints = typing.get_type_hints(Config)
    for key, table in data.items():
        if key not in hints:
            raise ConfigError(f"{_shown(key)}: unknown section (expected one of {', '.join(hints)})")
        if not isinstance(table, dict):
            raise ConfigError(f"{key}: expected a table")
        sections[key] = _build_section(hints[key], table, key)
    config = Config(**sections)
    _check_values(config)
    return config


def _build_section(cls: type, table: dict[str, Any], prefix: str) -> Any:
    hints = typing.get_type_hints(cls)
    values = {}
    for key, value in table.items():
        if key not in hints:
            raise ConfigError(f"{prefix}.{_shown(key)}: unknown key")
        values[key] = _coerce(value, hints[key], f"{prefix}.{key}")
    return cls(**values)


def _shown(key: str) -> str:
    """A key as written in an error line: quoted and escaped if it holds a newline or another unprintable character."""
    return key if key.isprintable() else repr(key)


def _coerce(value: Any, hint: Any, key: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        for option in options[:-1]:
            try:
                return _coerce(value, option, key)
            except ConfigError:
                pass
        return _coerce(value, options[-1], key)
    if origin is list:
        (item,) = typing.get_args(hint)
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list, got {type(value).__name__}")
        return [_coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        _, item = typing.get_args(hint)
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a table, got {type(value).__name__}")
        return {k: _coerce(v, item, f"{key}.{_shown(k)}") for k, v in value.items()}
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is float and isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{key}: must be a finite number")
    if (hint is int and isinstance(value, bool)) or not isinstance(value, hint):
        raise ConfigError(f"{key}: expected {hint.__name__}, got {type(value).__name__}")
    if hint is str and "\x00" in value:
        raise ConfigError(f"{key}: must not contain a NUL character")
    return value


def _check_values(config: Config) -> None:
    def require(ok: bool, key: str, what: str) -> None:
        if not ok:
            raise ConfigError(f"{key}: {what}")

    topic_safe = re.compile(r"^[^+#/\x00]+$")
    require(bool(topic_safe.match(config.station.name)), "station.name",
            "must be non-empty, without '/', '+' or '#' (it is part of MQTT topics)")
    prefix = config.mqtt.prefix
    require(not prefix or all(topic_safe.match(part) for part in prefix.split("/")), "mqtt.prefix",
            "must be topic levels without '+', '#' or empty levels")
    for key, value, bound in (("station.latitude", config.station.latitude, 90),
                              ("station.longitude", config.station.longitude, 180)):
        require(value is None or -bound <= value <= bound, key, f"must be within -{bound}..{bound}")
    require(config.audio.source in ("mic", "file"), "audio.source", 'expected "mic" or "file"')
    require(config.audio.source != "file" or bool(config.audio.files), "audio.files",
            'required when audio.source = "file"')
    require(0 <= config.audio.capture_rate <= MAX_CAPTURE_RATE, "audio.capture_rate",
            f"must be within 0..{MAX_CAPTURE_RATE}")
    require(0 < config.audio.block_ms <= MAX_BLOCK_MS, "audio.block_ms", f"must be within 1..{MAX_BLOCK_MS}")
    require(6 <= config.audio.ring_seconds <= MAX_RING_SECONDS, "audio.ring_seconds",
            f"must be within 6..{MAX_RING_SECONDS} (more than one window)")
    require(0 < config.audio.retry_initial_s <= config.audio.retry_max_s, "audio.retry_initial_s",
            "must be > 0 and <= audio.retry_max_s")
    require(config.audio.retry_max_s <= MAX_DELAY_S, "audio.retry_max_s", f"must be <= {MAX_DELAY_S}")
    require(1 <= config.model.threads <= MAX_THREADS, "model.threads", f"must be within 1..{MAX_THREADS}")
    require(0.0 <= config.detection.threshold <= 1.0, "detection.threshold", "must be within 0..1")
    for code, value in config.detection.species_thresholds.items():
        require(0.0 <= value <= 1.0, f"detection.species_thresholds.{code}", "must be within 0..1")
    require(0.0 <= config.detection.range_threshold <= 1.0, "detection.range_threshold", "must be within 0..1")
    require(not config.detection.range_filter or None not in (config.station.latitude, config.station.longitude),
            "detection.range_filter", "needs station.latitude and station.longitude")
    hop = config.detection.window_hop_s
    require(hop == int(hop) and 1 <= hop <= 5, "detection.window_hop_s", "must be a whole number from 1 to 5")
    require(config.detection.grid in GRIDS, "detection.grid", f"expected one of {', '.join(map(repr, GRIDS))}")
    require(0.0 <= config.detection.overlap_s <= BIRDNET_MAX_OVERLAP_S, "detection.overlap_s",
            f"must be within 0..{BIRDNET_MAX_OVERLAP_S}")
    require(0.5 <= config.detection.sensitivity <= 1.5, "detection.sensitivity", "must be within 0.5..1.5")
    require(1 <= config.mqtt.port <= 65535, "mqtt.port", "must be within 1..65535")
    require(config.mqtt.qos in (0, 1, 2), "mqtt.qos", "must be 0, 1 or 2")
    require(bool(config.mqtt.host) or not config.mqtt.enabled, "mqtt.host", "required when mqtt.enabled")
    require(5 <= config.mqtt.keepalive_s <= 65535, "mqtt.keepalive_s", "must be within 5..65535")
    require(config.mqtt.windows_top_k >= 1, "mqtt.windows_top_k", "must be >= 1")
    require(0 < config.mqtt.status_interval_s <= MAX_DELAY_S, "mqtt.status_interval_s",
            f"must be > 0 and <= {MAX_DELAY_S}")
    require(0 < config.mqtt.reconnect_min_s <= config.mqtt.reconnect_max_s, "mqtt.reconnect_min_s",
            "must be > 0 and <= mqtt.reconnect_max_s")
    require(config.mqtt.reconnect_max_s <= MAX_DELAY_S, "mqtt.reconnect_max_s", f"must be <= {MAX_DELAY_S}")
    require(config.outbox.max_rows >= 1, "outbox.max_rows", "must be >= 1")
    require(config.outbox.max_age_days > 0, "outbox.max_age_days", "must be > 0")
    require(config.store.max_age_days > 0, "store.max_age_days", "must be > 0")
    require(config.store.max_rows >= 1, "store.max_rows", "must be >= 1")
    require(config.clips.format in CLIP_FORMATS, "clips.format", 'expected "flac" or "ogg"')
    require(0 <= config.clips.margin_s <= MAX_CLIP_MARGIN_S, "clips.margin_s",
            f"must be within 0..{MAX_CLIP_MARGIN_S:g}")
    require(config.clips.max_total_mb > 0, "clips.max_total_mb", "must be > 0")
    require(config.clips.max_age_days > 0, "clips.max_age_days", "must be > 0")
    require(config.clips.keep_per_species_per_day >= 0, "clips.keep_per_species_per_day", "must be >= 0")
    require(config.clips.min_free_mb >= 0, "clips.min_free_mb", "must be >= 0")
    require(bool(config.archive.dir), "archive.dir", "must not be empty")
    require(1 <= config.archive.minutes_per_hour <= MINUTES_PER_HOUR, "archive.minutes_per_hour",
            f"must be within 1..{MINUTES_PER_HOUR}")
    require(config.archive.max_total_mb > 0, "archive.max_total_mb", "must be > 0")
    require(config.archive.min_free_mb >= 0, "archive.min_free_mb", "must be >= 0")
    require(1 <= config.web.port <= 65535, "web.port", "must be within 1..65535")
    require(config.web.auth in WEB_AUTH_MODES, "web.auth", 'expected "none", "token" or "basic"')
    require(config.web.auth != "basic" or bool(config.web.username), "web.username", 'required when web.auth = "basic"')
    require(config.web.read_only, "web.read_only", "must be true (birdd web never writes)")
    require(0 < config.web.sse_poll_s <= 1, "web.sse_poll_s", "must be within 0..1 (exclusive of 0)")
    require(config.web.max_streams >= 1, "web.max_streams", "must be >= 1")
    require(0 <= config.metrics.port <= 65535, "metrics.port", "must be within 0..65535")
    require(config.logging.level.upper() in ("DEBUG", "INFO", "WARNING", "ERROR"), "logging.level",
            "expected DEBUG, INFO, WARNING or ERROR")
