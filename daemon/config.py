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
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass, field, replace
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
PRIVACY_DETECTORS = ("auto", "classes", "vad", "both")
"""``filters.privacy_detector`` values"""
QUIET_MODES = ("detections", "audio")
"""``filters.quiet_mode`` values"""
MAX_FILTER_MARGIN_S = 30.0
"""upper bound of the filters' margins and of ``filters.confirm_within_s``: results are held that long at most"""
MAX_REMEMBER_S = 3600.0
"""upper bound of ``filters.noise_remember_s``"""
QUIET_RANGE = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)$")
"""a ``quiet_hours`` entry (``filters.quiet_hours``, ``notifications.quiet_hours``): ``HH:MM-HH:MM`` (local time; may
run past midnight; ``24:00`` ends a day)"""
QUIET_HOURS_KEY = "quiet_hours"
"""the key of a list of :data:`QUIET_RANGE` s in any section; one string is a list of one ("" none: the older form)"""
NEW_SPECIES_SCOPES = ("today", "year", "ever")
"""``notifications.new_species`` values: first detection of the species in the local day, year, or ever"""
_CLOCK_TIME = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
DEFAULT_SOURCE_NAME = "default"
"""the name of the one source of a configuration without ``[[audio.sources]]``"""
SOURCE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
"""a source name: safe in file names, MQTT topics and Home Assistant ids"""
SHARED_DETECTION_KEYS = ("window_hop_s", "range_filter")
"""detection keys a source cannot override: every source shares the window grid and the range model"""
SOURCE_SECTIONS = ("detection", "filters")
"""the sections an ``[[audio.sources]]`` entry may override in a sub-table of its own"""
AUDIO_SOURCES = ("mic", "file", "url")
MAX_CALIBRATION_DB = 200.0
DEFAULT_SCREEN_THRESHOLD = 0.3
"""``cascade.screen_threshold`` (and ``birdd replay --screen-threshold``) default"""
URL_SCHEMES = ("rtsp", "rtsps", "http", "https", "file")
"""``audio.url`` schemes (HLS is http(s)); a URL without a scheme is a file path"""


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
    """"mic" (sounddevice/PortAudio), "file" (replay of files or folders) or "url" (a stream or file decoded by
    FFmpeg, docs/streams.md)"""
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
    """mic, url: first delay before re-opening a missing or lost device or stream (seconds)"""
    retry_max_s: float = 60.0
    """mic, url: cap of the exponential back-off (seconds)"""
    url: str = ""
    """url: rtsp://, rtsps://, http(s):// (Icecast, Shoutcast, HLS) or a file path; a user:password@ in it is
    masked in every log line, event, status and payload"""
    rtsp_transport: str = "tcp"
    """url: RTSP over "tcp" (interleaved: passes NAT and firewalls) or "udp", for rtsp:// and rtsps:// URLs"""
    stall_s: float = 10.0
    """url: no audio for this long ends the connection (a gap and a ``stream_stalled`` event), then it reconnects
    (seconds)"""
    max_drift_s: float = 10.0
    """url: a stream this far ahead of or behind the wall clock is put back in step (a ``stream_drift`` event;
    seconds)"""
    sources: list[SourceConfig] = field(default_factory=list)
    """several sources in one daemon: ``[[audio.sources]]`` tables, each with a ``name`` and the keys above it
    overrides, and optional ``[audio.sources.detection]`` and ``[audio.sources.filters]`` tables of [detection]
    and [filters] keys it overrides (docs/sources.md); none = one source, named "default", from the keys above"""


@dataclass(frozen=True)
class ModelConfig:
    path: str = "/var/lib/birdd/model"
    """model bundle directory (made by ``birdd train``); SIGHUP reloads it"""
    threads: int = 1
    """BLAS / TFLite threads for inference"""


@dataclass(frozen=True)
class CascadeConfig:
    """A student/teacher cascade (docs/distill.md, "A cascade"): the model (the student) scores every window,
    the teacher re-scores the windows it flags."""

    teacher: str = ""
    """teacher bundle directory: a TFLite bundle (``birdd train DATA --backend tflite --zero-shot``, a BirdNET
    head), loaded once for every source ("" = no cascade); SIGHUP reloads the model, not the teacher"""
    screen_threshold: float = DEFAULT_SCREEN_THRESHOLD
    """a window whose best score from the model reaches this is scored again by the teacher, and carries the
    teacher's scores (0..1, exclusive of 0; keep it at or below detection.threshold, so that every detection
    is the teacher's)"""


@dataclass(frozen=True)
class DetectionConfig:
    threshold: float = 0.5
    """minimum confidence (0..1) for a detection"""
    species_thresholds: str | dict[str, float] = field(default_factory=dict)
    """per-species overrides of ``threshold``, by species code, scientific name or BirdNET label (as BirdNET-Go's
    species settings), or the path of a TOML file of such ``name = value`` lines (``birdd export-reviews`` writes
    one)"""
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
    """BirdNET grid: overlap of consecutive 3-s chunks (seconds, 0 to 2.9; BirdNET-Pi's default 0, BirdNET-Go
    analyses with 1.5)"""
    sensitivity: float = 1.0
    """BirdNET grid: BirdNET's detection sensitivity (0.5 to 1.5; higher gives higher confidences; BirdNET-Pi's
    default 1.0; BirdNET-Go's sensitivity g is 2 - g here)"""
    range_filter: bool = False
    """report only the species BirdNET's range model expects at station.latitude/longitude in the current week
    (docs/stations.md)"""
    range_threshold: float = 0.03
    """range model occurrence score a species needs to be expected (0..1; BirdNET-Analyzer's sf_thresh)"""


@dataclass(frozen=True)
class FiltersConfig:
    """False-positive controls and quiet hours (docs/filters.md); one table, so a source can override it whole."""

    privacy: bool = False
    """drop the detections heard near a human voice and keep no clip or archive audio of the voice"""
    privacy_detector: str = "auto"
    """"classes" (the bundle's human classes, BirdNET's), "vad" (Silero voice-activity detector on the audio),
    "both" (either hears a voice) or "auto" (both when the bundle has human classes and the VAD is installed, else
    the one there is)"""
    privacy_classes: list[str] = field(default_factory=lambda: ["human_vocal", "human_non_vocal", "human_whistle"])
    """the bundle's classes that mean a person is heard (codes or names; those not in the bundle are ignored)"""
    privacy_threshold: float = 0.1
    """score (0..1) of a human class at which a voice is heard"""
    privacy_vad_threshold: float = 0.5
    """speech probability (0..1) of the VAD at which a voice is heard"""
    privacy_margin_s: float = 3.0
    """detections and audio within this many seconds of a voice are dropped too (seconds)"""
    noise: bool = False
    """drop bird detections in windows where a noise class (dog, siren, engine, ...) is heard, and around them"""
    noise_classes: list[str] = field(default_factory=lambda: ["dog", "siren", "engine", "gun", "power_tools",
                                                              "fireworks"])
    """the bundle's noise classes (codes or names; those not in the bundle are ignored)"""
    noise_threshold: float = 0.3
    """score (0..1) at which a noise class is heard"""
    noise_margin_s: float = 2.0
    """detections within this many seconds of a noise are dropped too (seconds)"""
    noise_species: list[str] = field(default_factory=list)
    """only these species are dropped near a noise (e.g. owls, as BirdNET-Go's dog_bark_filter.csv); [] = all"""
    noise_remember_s: float = 0.0
    """after a noise, ``noise_species`` stay dropped this long (seconds; BirdNET-Go's dog-bark default: 300)"""
    confirm: bool = False
    """a species below ``confirm_high_confidence`` is reported only once heard in ``confirm_windows`` windows"""
    confirm_windows: int = 2
    """windows a species must be heard in, within ``confirm_within_s``, to be reported (once, at the first)"""
    confirm_within_s: float = 15.0
    """the span those windows must fall in, from the start of the first (seconds)"""
    confirm_high_confidence: float = 0.8
    """a detection at or above this confidence (0..1) is reported at once"""
    confirm_exempt: list[str] = field(default_factory=list)
    """species reported without confirmation (e.g. a bird that calls once a minute)"""
    quiet_hours: list[str] = field(default_factory=list)
    """local time ranges ``"HH:MM-HH:MM"`` (e.g. ["22:00-06:00"]) in which ``quiet_mode`` applies"""
    quiet_mode: str = "detections"
    """"detections" (none reported in quiet hours) or "audio" (detections reported, no clips, archive paused)"""
    quiet_timezone: str = ""
    """IANA time zone of quiet_hours (e.g. "Europe/Berlin"; "" = the system's local time zone)"""


@dataclass(frozen=True)
class SourceConfig:
    """One ``[[audio.sources]]`` entry, resolved: its own audio, detection and filter settings, [audio], [detection]
    and [filters] filling in what it does not set."""

    name: str
    audio: AudioConfig
    detection: DetectionConfig
    filters: FiltersConfig


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
    """SQLite file holding detections until every outbound target (MQTT, BirdWeather, webhooks, notifications) has
    them"""
    max_rows: int = 100_000
    """bound on detections waiting for a target; the oldest are dropped (and counted, per target) beyond it"""
    max_age_days: float = 30.0
    """detections waiting for a target longer than this are dropped (and counted, per target)"""


@dataclass(frozen=True)
class BirdWeatherConfig:
    enabled: bool = False
    """upload detections with their soundscape (FLAC) to BirdWeather (docs/integrations.md)"""
    token: str = ""
    """the station token from the BirdWeather station settings ("" = read it from token_file); never logged"""
    token_file: str = ""
    """file holding the station token, used when ``token`` is empty"""
    url: str = "https://app.birdweather.com"
    """BirdWeather server (the API is under ``/api/v1``)"""
    min_confidence: float = 0.7
    """detections below this confidence are not uploaded (0..1)"""
    algorithm: str = "2p4"
    """the ``algorithm`` field of every detection (BirdNET-Go sends "2p4", BirdNET 2.4)"""
    timeout_s: float = 30.0
    """HTTP timeout of one request (seconds)"""
    retry_max_s: float = 300.0
    """cap of the retry back-off while BirdWeather cannot be reached (seconds; the first retry is after 1 s)"""


@dataclass(frozen=True)
class WebhookConfig:
    name: str = ""
    """a short name, unique among webhooks (its outbox target is ``webhook:<name>``; keep it once chosen)"""
    url: str = ""
    """where each detection is POSTed as JSON (http or https)"""
    secret_file: str = ""
    """file holding the HMAC-SHA256 key: then every request carries ``X-Birdd-Signature-256: sha256=<hex>``"""
    secret_env: str = ""
    """environment variable holding the HMAC key, used when ``secret_file`` is empty ("" = no signature)"""
    headers: dict[str, str] = field(default_factory=dict)
    """extra request headers, e.g. {Authorization = "Bearer ..."}"""
    min_confidence: float = 0.0
    """detections below this confidence are not sent (0..1)"""
    timeout_s: float = 10.0
    """HTTP timeout of one request (seconds)"""
    retry_max_s: float = 300.0
    """cap of the retry back-off while the receiver cannot be reached (seconds; the first retry is after 1 s)"""


@dataclass(frozen=True)
class NotificationsConfig:
    enabled: bool = False
    """send notifications through Apprise (ntfy, Telegram, e-mail, Home Assistant, ...; docs/integrations.md)"""
    urls: list[str] = field(default_factory=list)
    """Apprise URLs, e.g. ["ntfys://mytopic", "tgram://bottoken/chatid"], each a target of its own (they hold
    secrets: keep this file private)"""
    min_confidence: float = 0.7
    """detections below this confidence never notify (0..1)"""
    new_species: list[str] = field(default_factory=lambda: ["today"])
    """notify the first detection of a species in the local "today", this "year" or "ever" (the store's history)"""
    species: list[str] = field(default_factory=list)
    """species always notified (codes, scientific or common names)"""
    quiet_hours: list[str] = field(default_factory=list)
    """local time ranges "HH:MM-HH:MM" without detection notifications (e.g. ["22:00-06:00"]; a single string as
    before is a list of one); alerts still go"""
    max_per_hour: int = 20
    """at most this many detection notifications in any hour (0 = no limit); the rest are counted, not sent"""
    summary_time: str = ""
    """local "HH:MM" of a daily summary of the day's species ("" = none)"""
    silent_hours: float = 0.0
    """alert when no detection was made for this many hours (0 = off)"""
    no_audio_minutes: float = 10.0
    """alert when no audio arrived for this many minutes (0 = off)"""
    disk_min_free_mb: float = 500.0
    """alert when the file system of the detection store has less free space (megabytes; 0 = off)"""
    retry_max_s: float = 300.0
    """cap of the retry back-off while a notification cannot be sent (seconds; the first retry is after 1 s)"""


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
class SoundLevelConfig:
    enabled: bool = False
    """report the sound level (dB(A) LAeq and 1/3-octave bands) on MQTT, Prometheus and the web (docs/streams.md)"""
    interval_s: int = 10
    """seconds of audio per report (whole seconds; BirdNET-Go reports every 10)"""
    calibration_db: float = 0.0
    """added to every level: the dB SPL of a digital RMS of 1.0 (0 = levels relative to digital full scale)"""


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
    """true: nothing in the API writes; false: authenticated clients may review detections (needs web.auth)"""
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
    cascade: CascadeConfig = field(default_factory=CascadeConfig)
    detection: DetectionConfig = field(default_factory=DetectionConfig)
    filters: FiltersConfig = field(default_factory=FiltersConfig)
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    outbox: OutboxConfig = field(default_factory=OutboxConfig)
    birdweather: BirdWeatherConfig = field(default_factory=BirdWeatherConfig)
    webhooks: list[WebhookConfig] = field(default_factory=list)
    notifications: NotificationsConfig = field(default_factory=NotificationsConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    clips: ClipsConfig = field(default_factory=ClipsConfig)
    archive: ArchiveConfig = field(default_factory=ArchiveConfig)
    web: WebConfig = field(default_factory=WebConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    sound_level: SoundLevelConfig = field(default_factory=SoundLevelConfig)

    @property
    def topic_prefix(self) -> str:
        """The MQTT topic prefix in force."""
        return self.mqtt.prefix or f"birdd/{self.station.name}"

    @property
    def source_list(self) -> list[SourceConfig]:
        """The sources the daemon runs: the ``[[audio.sources]]``, or one named "default" made of [audio] and
        [detection]."""
        return self.audio.sources or [SourceConfig(DEFAULT_SOURCE_NAME, self.audio, self.detection, self.filters)]


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
    source_tables: Any = []
    for key, table in data.items():
        if key not in hints:
            raise ConfigError(f"{_shown(key)}: unknown section (expected one of {', '.join(hints)})")
        if typing.get_origin(hints[key]) is list:  # [[webhooks]]: an array of tables
            (item,) = typing.get_args(hints[key])
            if not (isinstance(table, list) and all(isinstance(t, dict) for t in table)):
                raise ConfigError(f"{key}: expected an array of tables ([[{key}]])")
            sections[key] = [_build_section(item, t, f"{key}[{i}]") for i, t in enumerate(table)]
            continue
        if not isinstance(table, dict):
            raise ConfigError(f"{key}: expected a table")
        if key == "audio":
            table = dict(table)
            source_tables = table.pop("sources", [])
        sections[key] = _build_section(hints[key], table, key)
    config = Config(**sections)
    config = replace(config, detection=_with_threshold_file(config.detection, "detection"))
    if source_tables != []:
        config = replace(config, audio=replace(config.audio, sources=_build_sources(source_tables, config)))
    _check_values(config)
    return config


def _build_sources(tables: Any, config: Config) -> list[SourceConfig]:
    """The ``[[audio.sources]]`` entries, each over [audio] and [detection]; names checked here."""
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise ConfigError("audio.sources: expected an array of tables ([[audio.sources]])")
    audio_hints, detection_hints = typing.get_type_hints(AudioConfig), typing.get_type_hints(DetectionConfig)
    filters_hints = typing.get_type_hints(FiltersConfig)
    sources: list[SourceConfig] = []
    seen: dict[str, str] = {}
    for i, table in enumerate(tables):
        prefix = f"audio.sources[{i}]"
        table = dict(table)
        name = table.pop("name", None)
        if name is None:
            raise ConfigError(f"{prefix}.name: required (a name for the source, e.g. \"garden\")")
        if not isinstance(name, str) or not SOURCE_NAME.match(name):
            raise ConfigError(f"{prefix}.name: {name!r} must be 1 to 32 of a-z, 0-9, '_' and '-', "
                              "starting with a letter or digit (it names files, MQTT topics and entities)")
        if name in seen:
            raise ConfigError(f"{prefix}.name: {name!r} is already the name of {seen[name]}")
        seen[name] = prefix
        overrides = {section: table.pop(section, {}) for section in SOURCE_SECTIONS}
        for section, values in overrides.items():
            if not isinstance(values, dict):
                raise ConfigError(f"{prefix}.{section}: expected a table")
        audio = {key: _coerce(value, audio_hints[key], f"{prefix}.{key}")
                 for key, value in table.items() if _known(key, audio_hints, prefix, ("sources",))}
        detection = {key: _coerce(value, detection_hints[key], f"{prefix}.detection.{key}")
                     for key, value in overrides["detection"].items()
                     if _known(key, detection_hints, f"{prefix}.detection", SHARED_DETECTION_KEYS)}
        filters = {key: _coerce(_one_or_list(key, value), filters_hints[key], f"{prefix}.filters.{key}")
                   for key, value in overrides["filters"].items()
                   if _known(key, filters_hints, f"{prefix}.filters", ())}
        sources.append(SourceConfig(name, replace(config.audio, **audio), _with_threshold_file(
            replace(config.detection, **detection), f"{prefix}.detection"), replace(config.filters, **filters)))
    return sources


def _one_or_list(key: str, value: Any) -> Any:
    """A ``quiet_hours`` string as the list of one it stands for ("" none); any other value as it is."""
    if key == QUIET_HOURS_KEY and isinstance(value, str):
        return [value] if value else []
    return value


def _known(key: str, hints: dict[str, Any], prefix: str, refused: tuple[str, ...]) -> bool:
    """True for a key a source may set; a ConfigError naming it otherwise."""
    if key in refused:
        raise ConfigError(f"{prefix}.{key}: cannot be set per source (set it in its section: every source shares it)")
    if key not in hints:
        raise ConfigError(f"{prefix}.{_shown(key)}: unknown key")
    return True


def _with_threshold_file(detection: DetectionConfig, prefix: str) -> DetectionConfig:
    """``detection`` (the section at ``prefix``) with a ``species_thresholds`` file read into its table."""
    path = detection.species_thresholds
    if not isinstance(path, str):
        return detection
    key = f"{prefix}.species_thresholds"
    try:
        with open(path, "rb") as fh:
            table = tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(f"{key}: cannot read {path} ({exc.strerror})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{key}: {path} is not valid TOML: {exc}") from None
    thresholds = _coerce(table, dict[str, float], key)
    return replace(detection, species_thresholds=thresholds)


def _build_section(cls: type, table: dict[str, Any], prefix: str) -> Any:
    hints = typing.get_type_hints(cls)
    values = {}
    for key, value in table.items():
        if key not in hints:
            raise ConfigError(f"{prefix}.{_shown(key)}: unknown key")
        values[key] = _coerce(_one_or_list(key, value), hints[key], f"{prefix}.{key}")
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
    for i, source in enumerate(config.audio.sources):
        prefix = f"audio.sources[{i}]"
        _check_audio(source.audio, prefix, require)
        _check_detection(source.detection, f"{prefix}.detection", require)
        _check_filters(source.filters, f"{prefix}.filters", require)
    if not config.audio.sources:  # with sources, [audio] only gives their defaults
        _check_audio(config.audio, "audio", require)
    require(1 <= config.model.threads <= MAX_THREADS, "model.threads", f"must be within 1..{MAX_THREADS}")
    require(0.0 < config.cascade.screen_threshold <= 1.0, "cascade.screen_threshold",
            "must be within 0..1 (exclusive of 0)")
    _check_detection(config.detection, "detection", require)
    require(not config.detection.range_filter or None not in (config.station.latitude, config.station.longitude),
            "detection.range_filter", "needs station.latitude and station.longitude")
    hop = config.detection.window_hop_s
    require(hop == int(hop) and 1 <= hop <= 5, "detection.window_hop_s", "must be a whole number from 1 to 5")
    require(config.detection.grid in GRIDS, "detection.grid", f"expected one of {', '.join(map(repr, GRIDS))}")
    require(0.0 <= config.detection.overlap_s <= BIRDNET_MAX_OVERLAP_S, "detection.overlap_s",
            f"must be within 0..{BIRDNET_MAX_OVERLAP_S}")
    require(0.5 <= config.detection.sensitivity <= 1.5, "detection.sensitivity", "must be within 0.5..1.5")
    _check_filters(config.filters, "filters", require)
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
    _check_outbound(config, require)
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
    require(1 <= config.sound_level.interval_s <= MAX_DELAY_S, "sound_level.interval_s",
            f"must be within 1..{MAX_DELAY_S}")
    require(-MAX_CALIBRATION_DB <= config.sound_level.calibration_db <= MAX_CALIBRATION_DB,
            "sound_level.calibration_db", f"must be within -{MAX_CALIBRATION_DB:g}..{MAX_CALIBRATION_DB:g}")
    require(1 <= config.web.port <= 65535, "web.port", "must be within 1..65535")
    require(config.web.auth in WEB_AUTH_MODES, "web.auth", 'expected "none", "token" or "basic"')
    require(config.web.auth != "basic" or bool(config.web.username), "web.username", 'required when web.auth = "basic"')
    require(config.web.read_only or config.web.auth != "none", "web.read_only",
            'false needs web.auth = "token" or "basic" (only authenticated clients may review)')
    require(0 < config.web.sse_poll_s <= 1, "web.sse_poll_s", "must be within 0..1 (exclusive of 0)")
    require(config.web.max_streams >= 1, "web.max_streams", "must be >= 1")
    require(0 <= config.metrics.port <= 65535, "metrics.port", "must be within 0..65535")
    require(config.logging.level.upper() in ("DEBUG", "INFO", "WARNING", "ERROR"), "logging.level",
            "expected DEBUG, INFO, WARNING or ERROR")


def _check_filters(filters: FiltersConfig, prefix: str, require: Callable[[bool, str, str], None]) -> None:
    """The checks of a [filters] table, named under ``prefix`` ("filters" or "audio.sources[i].filters")."""
    require(filters.privacy_detector in PRIVACY_DETECTORS, f"{prefix}.privacy_detector",
            'expected "auto", "classes", "vad" or "both"')
    for key in ("privacy_threshold", "privacy_vad_threshold", "noise_threshold", "confirm_high_confidence"):
        require(0.0 <= getattr(filters, key) <= 1.0, f"{prefix}.{key}", "must be within 0..1")
    for key in ("privacy_margin_s", "noise_margin_s"):
        require(0.0 <= getattr(filters, key) <= MAX_FILTER_MARGIN_S, f"{prefix}.{key}",
                f"must be within 0..{MAX_FILTER_MARGIN_S:g}")
    require(0.0 <= filters.noise_remember_s <= MAX_REMEMBER_S, f"{prefix}.noise_remember_s",
            f"must be within 0..{MAX_REMEMBER_S:g}")
    require(1 <= filters.confirm_windows <= 60, f"{prefix}.confirm_windows", "must be within 1..60")
    require(5.0 <= filters.confirm_within_s <= MAX_FILTER_MARGIN_S, f"{prefix}.confirm_within_s",
            f"must be within 5..{MAX_FILTER_MARGIN_S:g} (at least one window)")
    _check_quiet_hours(filters.quiet_hours, f"{prefix}.quiet_hours", require)
    require(filters.quiet_mode in QUIET_MODES, f"{prefix}.quiet_mode", 'expected "detections" or "audio"')
    if filters.quiet_timezone:
        try:
            zoneinfo.ZoneInfo(filters.quiet_timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            require(False, f"{prefix}.quiet_timezone", f"{filters.quiet_timezone!r}: unknown time zone")


def _check_quiet_hours(ranges: list[str], key: str, require: Callable[[bool, str, str], None]) -> None:
    """Every entry of a ``quiet_hours`` list is a :data:`QUIET_RANGE`; the error names the entry (``key[i]``)."""
    for i, entry in enumerate(ranges):
        require(bool(QUIET_RANGE.match(entry)), f"{key}[{i}]",
                f'{entry!r}: expected "HH:MM-HH:MM" (local time, e.g. "22:00-06:00")')
def _check_outbound(config: Config, require: Callable[[bool, str, str], None]) -> None:
    """The outbound targets: BirdWeather, webhooks, notifications (docs/integrations.md)."""
    bw = config.birdweather
    require(not bw.enabled or bool(bw.token or bw.token_file), "birdweather.token",
            "required when birdweather.enabled (or birdweather.token_file)")
    require(re.match(r"^[A-Za-z0-9_-]*$", bw.token) is not None, "birdweather.token",
            "must be the station token (letters, digits, '-' and '_')")
    require(bw.url.startswith(("http://", "https://")), "birdweather.url", "must start with http:// or https://")
    require(not bw.enabled or (config.store.enabled and config.clips.enabled), "birdweather.enabled",
            "needs store.enabled and clips.enabled (the soundscape uploaded is the detection's clip)")
    names = set()
    for i, hook in enumerate(config.webhooks):
        key = f"webhooks[{i}]"
        require(re.match(r"^[A-Za-z0-9_.-]+$", hook.name) is not None, f"{key}.name",
                "required: letters, digits, '.', '-' and '_'")
        require(hook.name not in names, f"{key}.name", f"{hook.name!r} is used by another webhook")
        names.add(hook.name)
        require(hook.url.startswith(("http://", "https://")), f"{key}.url", "must start with http:// or https://")
        for header, value in hook.headers.items():
            require(re.match(r"^[!-9;-~]+$", header) is not None and "\n" not in value and "\r" not in value,
                    f"{key}.headers.{header}", "must be a header name and a one-line value")
    for prefix, section in (("birdweather", bw), *((f"webhooks[{i}]", h) for i, h in enumerate(config.webhooks)),
                            ("notifications", config.notifications)):
        require(0.0 <= section.min_confidence <= 1.0, f"{prefix}.min_confidence", "must be within 0..1")
        require(1.0 <= section.retry_max_s <= MAX_DELAY_S, f"{prefix}.retry_max_s", f"must be within 1..{MAX_DELAY_S}")
        if hasattr(section, "timeout_s"):
            require(0 < section.timeout_s <= MAX_DELAY_S, f"{prefix}.timeout_s", f"must be > 0 and <= {MAX_DELAY_S}")
    notes = config.notifications
    require(not notes.enabled or bool(notes.urls), "notifications.urls", "required when notifications.enabled")
    require(len(set(notes.urls)) == len(notes.urls), "notifications.urls", "a URL is listed twice")
    for scope in notes.new_species:
        require(scope in NEW_SPECIES_SCOPES, "notifications.new_species", 'expected "today", "year" or "ever"')
    require(not (notes.enabled and notes.new_species) or config.store.enabled, "notifications.new_species",
            "needs store.enabled (the detection store is the history it looks in)")
    _check_quiet_hours(notes.quiet_hours, "notifications.quiet_hours", require)
    require(not notes.summary_time or _CLOCK_TIME.match(notes.summary_time) is not None, "notifications.summary_time",
            'expected "HH:MM" (local time) or ""')
    require(not (notes.enabled and notes.summary_time) or config.store.enabled, "notifications.summary_time",
            "needs store.enabled (the summary reads the detection store)")
    require(notes.max_per_hour >= 0, "notifications.max_per_hour", "must be >= 0")
    for key in ("silent_hours", "no_audio_minutes", "disk_min_free_mb"):
        require(getattr(notes, key) >= 0, f"notifications.{key}", "must be >= 0")
def _check_audio(audio: AudioConfig, prefix: str, require: Callable[[bool, str, str], None]) -> None:
    """The checks of one source's audio keys, named under ``prefix`` ("audio" or "audio.sources[i]")."""
    require(audio.source in AUDIO_SOURCES, f"{prefix}.source", 'expected "mic", "file" or "url"')
    require(audio.source != "file" or bool(audio.files), f"{prefix}.files",
            f'required when {prefix}.source = "file"')
    require(audio.source != "url" or bool(audio.url), f"{prefix}.url", f'required when {prefix}.source = "url"')
    require(not audio.url or "://" not in audio.url or audio.url.split("://", 1)[0].lower() in URL_SCHEMES,
            f"{prefix}.url", f"expected a file path or a URL of {', '.join(s + '://' for s in URL_SCHEMES)}")
    require(audio.rtsp_transport in ("tcp", "udp"), f"{prefix}.rtsp_transport", 'expected "tcp" or "udp"')
    require(0 < audio.stall_s <= MAX_DELAY_S, f"{prefix}.stall_s", f"must be > 0 and <= {MAX_DELAY_S}")
    require(0 < audio.max_drift_s <= MAX_DELAY_S, f"{prefix}.max_drift_s", f"must be > 0 and <= {MAX_DELAY_S}")
    require(0 <= audio.capture_rate <= MAX_CAPTURE_RATE, f"{prefix}.capture_rate",
            f"must be within 0..{MAX_CAPTURE_RATE}")
    require(0 < audio.block_ms <= MAX_BLOCK_MS, f"{prefix}.block_ms", f"must be within 1..{MAX_BLOCK_MS}")
    require(6 <= audio.ring_seconds <= MAX_RING_SECONDS, f"{prefix}.ring_seconds",
            f"must be within 6..{MAX_RING_SECONDS} (more than one window)")
    require(0 < audio.retry_initial_s <= audio.retry_max_s, f"{prefix}.retry_initial_s",
            f"must be > 0 and <= {prefix}.retry_max_s")
    require(audio.retry_max_s <= MAX_DELAY_S, f"{prefix}.retry_max_s", f"must be <= {MAX_DELAY_S}")


def _check_detection(detection: DetectionConfig, prefix: str, require: Callable[[bool, str, str], None]) -> None:
    """The checks of the detection keys a source may override, named under ``prefix``."""
    require(0.0 <= detection.threshold <= 1.0, f"{prefix}.threshold", "must be within 0..1")
    for code, value in detection.species_thresholds.items():
        require(0.0 <= value <= 1.0, f"{prefix}.species_thresholds.{code}", "must be within 0..1")
    require(0.0 <= detection.range_threshold <= 1.0, f"{prefix}.range_threshold", "must be within 0..1")
