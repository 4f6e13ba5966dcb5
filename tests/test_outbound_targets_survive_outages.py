"""Every outbound target gets every detection at least once, in order, with stable ids, through outages and a
SIGKILL of the daemon; a target that answers 4xx forever is reported and holds back none of the others.

A real ``birdd run`` (a looped replay, one species, a detection a second) feeds mosquitto, a webhook receiver that
checks the HMAC signature, a webhook that refuses everything (400), the BirdWeather test server and an Apprise
``json://`` receiver. Then every target goes down at once while detections keep coming; the daemon is SIGKILLed and
started again while they are down; they come back. Each must then hold every detection of the detection store (for
BirdWeather: every detection whose clip was kept), first arrivals in store order, ids as the store has them.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import signal
import sqlite3
import time

import pytest
from daemon_process import Daemon, toml_value, write_config
from http_receivers import BirdWeatherServer, Receiver

from daemon.outbound.notify import target_name

pytestmark = pytest.mark.integration

TOKEN = "OutageStationToken42"
KEY = b"outage-hook-key"
SPECIES = "syn01"
PHASE_DETECTIONS = 2
"""new detections (rows of the detection store) each phase waits for"""


def signed(request):
    """The webhook receiver's answer: 200 when the request carries its HMAC-SHA256 signature under :data:`KEY`."""
    expected = "sha256=" + hmac.new(KEY, request.body, hashlib.sha256).hexdigest()
    ok = hmac.compare_digest(request.headers.get("x-birdd-signature-256", ""), expected)
    return (200, b"{}") if ok else (401, b"bad signature")


def outage_config(work, model, soundscape, broker, hook, refuser, bw, notify, *, retry_max_s=1.0,
                  reconnect_min_s=0.2, status_interval_s=1.0, clips_mb=64.0):
    """The outage scenario's config in ``work``: a looped replay of ``soundscape`` detecting :data:`SPECIES`
    every second, MQTT, BirdWeather, Apprise and two webhooks (``hook`` signed with :data:`KEY`, ``refuser``),
    every target retrying at most every ``retry_max_s`` (``bench/outage.py`` runs it for minutes)."""
    key_file = work / "hook.key"
    key_file.write_bytes(KEY)
    path = write_config(work / "config.toml", {
        "station": {"name": "out"},
        "audio": {"source": "file", "files": [str(soundscape)], "realtime": True, "loop": True},
        "model": {"path": str(model)},
        "detection": {"threshold": 0.0, "window_hop_s": 1.0, "include": [SPECIES]},
        "mqtt": {"host": broker.host, "port": broker.port, "ha_discovery": False,
                 "status_interval_s": status_interval_s, "reconnect_min_s": reconnect_min_s,
                 "reconnect_max_s": retry_max_s},
        "outbox": {"path": str(work / "outbox.sqlite")},
        "clips": {"keep_per_species_per_day": 0, "max_total_mb": clips_mb, "margin_s": 0.5},
        "birdweather": {"enabled": True, "token": TOKEN, "url": bw.url, "min_confidence": 0.0,
                        "retry_max_s": retry_max_s},
        "notifications": {"enabled": True, "urls": [f"json://127.0.0.1:{notify.port}/n"], "new_species": [],
                          "species": [SPECIES], "max_per_hour": 0, "min_confidence": 0.0, "disk_min_free_mb": 0.0,
                          "no_audio_minutes": 0.0, "retry_max_s": retry_max_s},
    })
    hooks = [{"name": "home", "url": f"{hook.url}/h", "secret_file": str(key_file), "retry_max_s": retry_max_s},
             {"name": "refuser", "url": f"{refuser.url}/r", "retry_max_s": retry_max_s}]
    with path.open("a") as fh:
        for table in hooks:
            fh.write("[[webhooks]]\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in table.items()))
    return path


def _store_rows(path):
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT id, detection_id, local_time, clip_bytes FROM detections ORDER BY id").fetchall()
    finally:
        conn.close()


def _wait(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timeout after {timeout} s: {what}")
        time.sleep(0.05)


def _more_detections(store, count=PHASE_DETECTIONS, timeout=30.0):
    """Wait until the detection store holds ``count`` more rows."""
    before = len(_store_rows(store)) if store.exists() else 0
    _wait(lambda: store.exists() and len(_store_rows(store)) >= before + count, timeout,
          f"{count} more detection(s) in the store")


def _first_arrivals(ids):
    return list(dict.fromkeys(ids))


def test_every_target_gets_every_detection_through_outages_and_a_sigkill(tmp_path, mosquitto, subscribe,
                                                                           trained_model, synthetic_corpus):
    soundscape = sorted((synthetic_corpus / "test_soundscapes").iterdir())[0]
    hook, refuser, notify = Receiver(signed), Receiver(lambda r: (400, b'{"error": "never"}')), Receiver()
    bw = BirdWeatherServer(TOKEN)
    config = outage_config(tmp_path, trained_model, soundscape, mosquitto, hook, refuser, bw, notify)
    detections = subscribe(mosquitto, "birdd/out/detections")
    status = subscribe(mosquitto, "birdd/out/status/#")
    log = tmp_path / "daemon.log"
    store = tmp_path / "config.detections.sqlite"
    daemon = Daemon(config, log)
    try:
        daemon.wait_for_log("birdd running", timeout=30)
        _wait(lambda: len(hook.accepted()) >= 2 and len(bw.detections) >= 2 and len(notify.accepted()) >= 2
              and len(detections.messages()) >= 2, 20, "the first detections everywhere")

        mosquitto.stop()  # every target down while detections keep coming
        hook.stop()
        notify.stop()
        bw.down_status = 503
        _more_detections(store)
        daemon.signal(signal.SIGKILL)  # a power cut in the middle of it
        daemon.wait(10)
        daemon.close()
        daemon = Daemon(config, log)
        daemon.wait_for_log("birdd running", timeout=30)
        _more_detections(store)
        mosquitto.start()
        hook.start()
        notify.start()
        bw.down_status = None

        _more_detections(store, 1)
        rows = _store_rows(store)
        ids = [detection_id for _, detection_id, _, _ in rows]
        got = {"mqtt": lambda: [m.json()["detection_id"] for m in detections.messages()],
               "webhook": lambda: [r.json()["detection_id"] for r in hook.accepted()],
               "notifications": lambda: [re.search(r"at (\S+)$", r.json()["message"]).group(1)
                                         for r in notify.accepted()]}
        expected = {"mqtt": ids, "webhook": ids, "notifications": [local_time for _, _, local_time, _ in rows]}
        for name, read in got.items():
            _wait(lambda read=read, name=name: set(read()) >= set(expected[name]), 20, f"{name}: every detection")
            arrivals = [item for item in _first_arrivals(read()) if item in set(expected[name])]
            assert arrivals == expected[name], name  # in order: first arrivals follow the store's ids
        with_clip = [row_id for row_id, _, _, clip_bytes in rows if clip_bytes > 0]
        assert len(with_clip) >= len(rows) // 2
        _wait(lambda: len(bw.detections) >= len(with_clip), 20, "birdweather: every detection with a clip")

        stored = {detection_id: row_id for row_id, detection_id, _, _ in rows}
        for payload in [m.json() for m in detections.messages()] + [r.json() for r in hook.accepted()]:
            if payload["detection_id"] in stored:  # ids stable: the store's id travels with the detection
                assert payload["id"] == stored[payload["detection_id"]]
        assert hook.attempts >= len(hook.accepted())
        _wait(lambda: refuser.attempts >= len(ids), 10, "the refusing webhook: every row tried")
        assert not refuser.accepted()  # tried every row, refused each, and the others went on meanwhile
        stats = status.wait_for(lambda ms: any(m.topic.endswith("/stats") and m.json()["outbound"]
                                               ["webhook:refuser"]["refused"] >= len(ids) for m in ms), 10)
        report = [m.json() for m in stats if m.topic.endswith("/stats")][-1]["outbound"]
        notifications = target_name(f"json://127.0.0.1:{notify.port}/n")
        assert set(report) == {"mqtt", "birdweather", "webhook:home", "webhook:refuser", notifications}
        assert set(report[notifications]["alerts"]) >= {"backlog", "delivered", "retried", "last_error"}
        assert report["webhook:home"]["retried"] > 0 and report["webhook:home"]["last_error"] == ""
        events = [m.json() for m in status.messages("birdd/out/status/events")]
        assert any(e["kind"] == "outbound_refused" and "webhook:refuser" in e["message"] for e in events)
    finally:
        daemon.signal(signal.SIGTERM)
        code = daemon.wait(15)
        daemon.close()
        for server in (hook, refuser, notify, bw):
            server.stop()
    assert code == 0  # the delivery threads stop within the stop budget
    assert TOKEN not in log.read_text(errors="replace")
