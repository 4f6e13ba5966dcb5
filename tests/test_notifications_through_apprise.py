"""Notifications go through Apprise (a ``json://`` target to a local HTTP server): the first detection of a
species today / this year / ever (from the detection store), listed species always, nothing in quiet hours or
beyond the hourly limit; the watch alerts on silence, missing audio and a filling disk, and sends a summary."""

import random
from datetime import datetime

import pytest
from http_receivers import Receiver

from daemon.config import NotificationsConfig, OutboxConfig, StoreConfig, config_from_dict
from daemon.errors import ConfigError
from daemon.filters.quiet import QuietHours
from daemon.outbound.notify import NotificationTarget, NotificationWatch, Notifier
from daemon.outbound.rules import NotificationRules
from daemon.pipeline.detection import Detection, iso_utc, make_detection_id
from daemon.service.delivery import DeliveryWorker
from daemon.sinks.outbox import Outbox
from daemon.store.schema import open_store
from daemon.store.writer import DetectionStore

DAY_S = 86_400.0


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.stop()


def _detection(n, species, epoch, confidence=0.9):
    code, common, scientific = species
    return Detection(make_detection_id("t", "mic", 0.0, n, code), "t", "mic", iso_utc(epoch - 5), iso_utc(epoch),
                     code, common, scientific, confidence, {"name": "m", "version": "1"})


TIT = ("grtit1", "Great Tit", "Parus major")
ROBIN = ("eurrob1", "European Robin", "Erithacus rubecula")
OWL = ("tawowl1", "Tawny Owl", "Strix aluco")


def _notifications(receiver, **keys):
    defaults = {"enabled": True, "urls": [f"json://127.0.0.1:{receiver.port}/notify"], "max_per_hour": 0,
                "min_confidence": 0.0}
    return NotificationsConfig(**(defaults | keys))


def test_first_of_the_day_year_and_ever_from_the_store(tmp_path, receiver):
    store = DetectionStore(StoreConfig(path=str(tmp_path / "detections.sqlite"), max_age_days=3650))
    noon = datetime(2026, 6, 15, 12, 0).timestamp()
    detections = [  # (detection, what it is)
        (_detection(1, TIT, noon - 200 * DAY_S), "first detection ever"),   # last year
        (_detection(2, TIT, noon - 100 * DAY_S), "first detection this year"),
        (_detection(3, TIT, noon - 100 * DAY_S + 60), None),              # same day again
        (_detection(4, TIT, noon), "first detection today"),
        (_detection(5, ROBIN, noon + 60), "first detection ever"),
        (_detection(6, ROBIN, noon + 120, confidence=0.4), None),          # below min_confidence
    ]
    payloads = []
    for detection, _ in detections:
        row_id, _ = store.add(detection)
        payloads.append(detection.to_payload() | {"id": row_id, "clip": None})
    config = _notifications(receiver, new_species=["today", "year", "ever"], min_confidence=0.5)
    rules = NotificationRules(config, "garden", open_store(tmp_path / "detections.sqlite", read_only=True))
    target = NotificationTarget(rules, Notifier(config))
    outbox = Outbox(OutboxConfig(path=str(tmp_path / "outbox.sqlite")), targets=("notifications",))
    for payload in payloads:
        outbox.put(payload)
    worker = DeliveryWorker(target, outbox, retry_max_s=1.0, rng=random.Random(3))
    for _ in payloads:
        worker.step()
    bodies = [r.json()["message"] for r in receiver.accepted()]
    assert [body.split(":")[0] for body in bodies] == [why for _, why in detections if why]
    assert "Great Tit (Parus major), 90%" in bodies[0]
    assert receiver.accepted()[0].json()["title"] == "birdd garden: Great Tit"
    counters = outbox.target_counters("notifications")
    assert (counters.delivered, counters.skipped, counters.backlog) == (4, 2, 0)
    outbox.close()
    store.close()


def test_listed_species_quiet_hours_and_the_hourly_limit(receiver, make_detection):
    now = [datetime(2026, 6, 15, 23, 30).timestamp()]
    config = _notifications(receiver, new_species=[], species=["Great Tit"], quiet_hours=["23:00-06:00"],
                            max_per_hour=2)
    rules = NotificationRules(config, "garden", None, clock=lambda: now[0])
    assert rules.message(make_detection(0)) is None and rules.quiet == 1  # 23:30: quiet
    now[0] += 7 * 3600  # 06:30
    target = NotificationTarget(rules, Notifier(config))
    assert [target.send(make_detection(i)) for i in range(4)] == [True, True, False, False]
    assert rules.rate_limited == 2 and len(receiver.accepted()) == 2
    now[0] += 3600
    assert target.send(make_detection(5))
    assert target.send(make_detection(6) | {"species_code": "x", "common_name": "y", "scientific_name": "z"}) is False


def test_quiet_hours_within_a_day_and_across_midnight_in_either_form():
    at = lambda h, m: datetime(2026, 1, 2, h, m).timestamp()  # noqa: E731
    def quiet(form: str | list[str]) -> QuietHours:
        return QuietHours(config_from_dict({"notifications": {"quiet_hours": form}}).notifications.quiet_hours)

    for form in ("22:00-06:00", ["22:00-06:00"], ["12:00-13:00", "22:00-06:00"]):  # the older string, the list
        assert quiet(form).at(at(23, 0)) and quiet(form).at(at(5, 59)) and not quiet(form).at(at(6, 0))
    assert not quiet("").at(at(23, 0)) and not quiet([]).at(at(23, 0))
    both = quiet(["12:00-13:00", "22:00-06:00"])
    assert both.at(at(12, 30)) and not both.at(at(13, 0)) and not quiet("22:00-06:00").at(at(12, 30))


def test_a_service_that_is_down_is_retried(tmp_path, receiver, make_detection):
    config = _notifications(receiver, new_species=[], species=["grtit1"])
    target = NotificationTarget(NotificationRules(config, "garden", None), Notifier(config))
    outbox = Outbox(OutboxConfig(path=str(tmp_path / "outbox.sqlite")), targets=("notifications",))
    outbox.put(make_detection(0))
    worker = DeliveryWorker(target, outbox, retry_max_s=1.0, rng=random.Random(4))
    receiver.stop()
    assert worker.step() > 0 and "apprise" in worker.last_error
    receiver.start()
    worker.step()
    assert len(receiver.accepted()) == 1 and outbox.target_counters("notifications").delivered == 1
    outbox.close()


def test_the_watch_alerts_on_silence_audio_and_disk_and_sends_a_summary(tmp_path, receiver):
    store = DetectionStore(StoreConfig(path=str(tmp_path / "detections.sqlite"), max_age_days=3650))
    evening = datetime(2026, 6, 15, 20, 59).timestamp()
    for n in range(3):
        store.add(_detection(n, TIT if n else OWL, evening - 3600 + n))
    now = [evening]
    stats = {"detections": 3, "audio_seconds": 100.0, "source_state": "running"}
    config = _notifications(receiver, silent_hours=1.0, no_audio_minutes=10.0, disk_min_free_mb=1e12,
                            summary_time="21:00")
    watch = NotificationWatch(config, "garden", Notifier(config), lambda: dict(stats),
                              open_store(tmp_path / "detections.sqlite", read_only=True), tmp_path,
                              clock=lambda: now[0])
    watch.check()
    titles = lambda: [r.json()["title"] for r in receiver.accepted()]  # noqa: E731
    assert titles() == ["birdd garden: disk filling up" + titles()[0].split("disk filling up")[1]]
    now[0] += 120  # 21:01: the summary; audio stalled for 2 min only
    watch.check()
    summary = receiver.accepted()[-1].json()
    assert summary["title"] == "birdd garden: daily summary"
    assert "2 species, 3 detections" in summary["message"] and "Great Tit: 2" in summary["message"]
    now[0] += 600  # audio unchanged for 12 min
    watch.check()
    assert titles()[-1].startswith("birdd garden: no audio for 10 min")
    stats["audio_seconds"] = 800.0
    now[0] += 3600  # audio back; no detection for over an hour
    watch.check()
    assert set(titles()[-2:]) == {"birdd garden: audio again", "birdd garden: no detection for 1 h"}
    watch.check()
    assert len(titles()) == 5  # each alert once
    now[0] += DAY_S
    watch.check()
    assert titles()[-1] == "birdd garden: daily summary"
    store.close()


def test_a_url_apprise_does_not_know_names_the_key():
    with pytest.raises(ConfigError, match=r"^notifications\.urls\[1\]: not a URL Apprise knows"):
        Notifier(NotificationsConfig(enabled=True, urls=["json://127.0.0.1:9/", "nonsense-scheme://x"]))

