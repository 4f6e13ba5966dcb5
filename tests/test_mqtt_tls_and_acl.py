"""TLS and ACLs against a real mosquitto: publishing works; each failure is one clear log line, keeps the outbox,
retries no faster than the back-off, and is reported on ``<prefix>/status/events`` once the broker is fixed.

The CA and certificates are made here with ``openssl``. The broker has a TLS listener for birdd (user
``birdd``, whose ACL allows only ``birdd/garden/#``) and a plain loopback listener for the test's
subscriber. Failure modes: a certificate from a CA birdd does not trust, an expired certificate, a
certificate for another host name, and a topic the ACL denies (MQTT 5 reason code "Not authorized";
with MQTT 3.1.1 mosquitto would acknowledge and drop it).
"""

from __future__ import annotations

import itertools
import logging
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import HOST, Broker, free_port

from daemon.config import config_from_dict
from daemon.sinks.mqtt import MqttPublisher
from daemon.sinks.outbox import Outbox

pytestmark = pytest.mark.integration

USER, PASSWORD = "birdd", "correct horse"
WATCHER = ("watcher", "battery staple")
RECONNECT_MIN_S, RECONNECT_MAX_S = 0.2, 0.8
FAILING_S = 3.0
"""how long each failure is left to retry before the broker is fixed"""


def _openssl(*args: str | Path) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True)


def _ca(directory: Path, name: str) -> tuple[Path, Path]:
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-subj", f"/CN={name}",
             "-days", "2")
    return cert, key


def _server_cert(directory: Path, name: str, ca: tuple[Path, Path], san: str, days: int) -> tuple[Path, Path]:
    cert, key, csr, ext = (directory / f"{name}.{s}" for s in ("crt", "key", "csr", "ext"))
    ext.write_text(f"subjectAltName={san}\n")
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", f"/CN={name}")
    _openssl("x509", "-req", "-in", csr, "-CA", ca[0], "-CAkey", ca[1], "-CAcreateserial", "-out", cert,
             "-days", str(days), "-extfile", ext)
    return cert, key


@dataclass(frozen=True)
class Pki:
    ca: Path
    certs: dict[str, tuple[Path, Path]]
    """server certificate and key by name: good, untrusted, expired, wrong_host"""


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    ca, other = _ca(directory, "birdd-test-ca"), _ca(directory, "someone-else-ca")
    here = f"IP:{HOST},DNS:localhost"
    return Pki(ca[0], {
        "good": _server_cert(directory, "good", ca, here, 2),
        "untrusted": _server_cert(directory, "untrusted", other, here, 2),
        "expired": _server_cert(directory, "expired", ca, here, -1),  # not after: yesterday
        "wrong_host": _server_cert(directory, "wrong_host", ca, "DNS:otherhost.example", 2),
    })


@dataclass(frozen=True)
class Listener:
    """Where the test's subscriber connects (the shape :class:`conftest.Subscriber` reads)."""

    host: str
    port: int


class TlsBroker:
    """A mosquitto with a TLS listener (certificate chosen per start) and a plain one for the subscriber."""

    def __init__(self, workdir: Path, pki: Pki) -> None:
        self._broker = Broker(workdir, free_port(), {USER: PASSWORD, WATCHER[0]: WATCHER[1]})
        self._base = self._broker.conf.read_text()
        self._pki = pki
        self.port = self._broker.port
        self.plain = Listener(HOST, free_port())
        self._acl = workdir / "acl"

    def start(self, cert: str, allowed: tuple[str, ...] = ("birdd/garden/#",)) -> None:
        self._acl.write_text(f"user {USER}\n" + "".join(f"topic readwrite {t}\n" for t in allowed) +
                             f"user {WATCHER[0]}\ntopic read #\n")
        certfile, keyfile = self._pki.certs[cert]
        self._broker.conf.write_text(self._base + f"cafile {self._pki.ca}\ncertfile {certfile}\nkeyfile {keyfile}\n"
                                     f"acl_file {self._acl}\nlistener {self.plain.port} {HOST}\n")
        self._broker.start()

    def stop(self) -> None:
        self._broker.stop()


@pytest.fixture
def tls_broker(tmp_path: Path, pki: Pki):
    broker = TlsBroker(tmp_path / "tls-broker", pki)
    yield broker
    broker.stop()


def _config(broker: TlsBroker, pki: Pki, tmp_path: Path, prefix: str = ""):
    password = tmp_path / "password"
    password.write_text(PASSWORD)
    return config_from_dict({
        "station": {"name": "garden"},
        "mqtt": {"host": HOST, "port": broker.port, "tls": True, "ca_file": str(pki.ca), "username": USER,
                 "password_file": str(password), "prefix": prefix, "reconnect_min_s": RECONNECT_MIN_S,
                 "reconnect_max_s": RECONNECT_MAX_S, "status_interval_s": 1.0, "keepalive_s": 10,
                 "ha_discovery": False},
        "outbox": {"path": str(tmp_path / "outbox.sqlite")},
    })


def _outbox_holding(config, payloads: list[dict]) -> Outbox:
    outbox = Outbox(config.outbox)
    for payload in payloads:
        outbox.put(payload)
    return outbox


def test_publishing_over_tls_with_a_password_and_an_acl_works(tls_broker, pki, tmp_path, subscribe, make_detection):
    tls_broker.start("good")
    sub = subscribe(tls_broker.plain, "birdd/garden/#", auth=WATCHER)
    config = _config(tls_broker, pki, tmp_path)
    outbox = _outbox_holding(config, [make_detection(i) for i in range(5)])
    publisher = MqttPublisher(config, outbox)
    publisher.start()
    got = sub.wait_for(lambda ms: len(ms) >= 5, topic="birdd/garden/detections")
    assert [m.json() for m in got] == [make_detection(i) for i in range(5)]
    sub.wait_for(lambda ms: any(m.text == "online" for m in ms), topic="birdd/garden/status")
    publisher.stop()
    assert outbox.backlog() == 0
    outbox.close()


FAILURES = {  # mode -> (certificate the broker starts with, prefix birdd uses, what the log line says)
    "untrusted_ca": ("untrusted", "", "certificate is refused: unable to get local issuer certificate"),
    "expired": ("expired", "", "certificate is refused: certificate has expired"),
    "wrong_host": ("wrong_host", "", "mismatch, certificate is not valid for '127.0.0.1'"),
    "denied_topic": ("good", "birdd/elsewhere", "refused detection 1 on birdd/elsewhere/detections: Not authorized"),
}


@pytest.mark.parametrize("mode", sorted(FAILURES))
def test_failure_is_one_line_kept_backed_off_and_reported(mode, tls_broker, pki, tmp_path, subscribe,
                                                          make_detection, caplog):
    cert, prefix, says = FAILURES[mode]
    prefix_in_force = prefix or "birdd/garden"
    tls_broker.start(cert)
    sub = subscribe(tls_broker.plain, f"{prefix_in_force}/#", auth=WATCHER)  # a persistent session: it stays
    config = _config(tls_broker, pki, tmp_path, prefix)
    outbox = _outbox_holding(config, [make_detection(i) for i in range(3)])
    publisher = MqttPublisher(config, outbox)
    try:  # a failed assertion must not leave a publisher retrying into the tests after this one
        with caplog.at_level(logging.WARNING, logger="daemon.sinks.mqtt"):
            publisher.start()
            time.sleep(FAILING_S)
            retries = [r for r in caplog.records if "retrying in" in r.getMessage()]
        assert len(retries) >= 3, [r.getMessage() for r in caplog.records]
        assert all(says in r.getMessage() and "\n" not in r.getMessage() for r in retries), retries[0].getMessage()
        for previous, record in itertools.pairwise(retries):  # never faster than the announced delay
            announced = float(re.search(r"retrying in ([0-9.]+) s", previous.getMessage()).group(1))
            assert record.created - previous.created >= announced - 0.02
        assert len(retries) <= FAILING_S / (RECONNECT_MIN_S / 2) + 1
        assert outbox.backlog() == 3 and publisher.is_alive()

        # the broker is fixed (a trusted, valid certificate for this host; the ACL allows the prefix): all arrives
        tls_broker.stop()
        tls_broker.start("good", allowed=("birdd/garden/#", f"{prefix_in_force}/#"))
        got = sub.wait_for(lambda ms: len(ms) >= 3, topic=f"{prefix_in_force}/detections", timeout=15)
        assert [m.json() for m in got][:3] == [make_detection(i) for i in range(3)]
        events = sub.wait_for(lambda ms: any(says in m.json()["message"] for m in ms),
                              topic=f"{prefix_in_force}/status/events")
        assert {m.json()["kind"] for m in events} == {"mqtt_error"}
    finally:
        publisher.stop()
    assert outbox.backlog() == 0
    outbox.close()
