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
from daemon.outbound.notify import AlertTarget, NotificationTarget, NotificationWatch, Notifier, target_name
from daemon.outbound.rules import NotificationRules
from daemon.pipeline.detection import Detection, iso_utc, make_detection_id
from daemon.service.delivery import DeliveryWorker, make_outbound, target_names
from daemon.service.metrics import Metrics
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


def _target(config, rules, index=0):
    url = config.urls[index]
    return NotificationTarget(target_name(url), rules, Notifier(url, index))


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
    target = _target(config, rules)
    outbox = Outbox(OutboxConfig(path=str(tmp_path / "outbox.sqlite")), targets=(target.name,))
    for payload in payloads:
        outbox.put(payload)
    worker = DeliveryWorker(target, outbox, retry_max_s=1.0, rng=random.Random(3))
    for _ in payloads:
        worker.step()
    bodies = [r.json()["message"] for r in receiver.accepted()]
    assert [body.split(":")[0] for body in bodies] == [why for _, why in detections if why]
    assert "Great Tit (Parus major), 90%" in bodies[0]
    assert receiver.accepted()[0].json()["title"] == "birdd garden: Great Tit"
    counters = outbox.target_counters(target.name)
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
    target = _target(config, rules)
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
    target = _target(config, NotificationRules(config, "garden", None))
    outbox = Outbox(OutboxConfig(path=str(tmp_path / "outbox.sqlite")), targets=(target.name,))
    outbox.put(make_detection(0))
    worker = DeliveryWorker(target, outbox, retry_max_s=1.0, rng=random.Random(4))
    receiver.stop()
    assert worker.step() > 0 and "apprise" in worker.last_error
    receiver.start()
    worker.step()
    assert len(receiver.accepted()) == 1 and outbox.target_counters(target.name).delivered == 1
    outbox.close()


class Station:
    """A watch over ``stats`` with its alerts outbox, state file and one delivery worker per URL (``restart()``:
    the same files opened again, as after a restart of the daemon)."""

    def __init__(self, tmp_path, config, stats, now, store=None):
        self.tmp_path, self.config, self.stats, self.now, self.store = tmp_path, config, stats, now, store
        self.start()

    def start(self):
        names = [target_name(url) for url in self.config.urls]
        self.alerts = Outbox(OutboxConfig(path=str(self.tmp_path / "outbox.alerts.sqlite")), targets=names)
        self.workers = [DeliveryWorker(AlertTarget(name, Notifier(url, i)), self.alerts, 1.0, rng=random.Random(i))
                        for i, (url, name) in enumerate(zip(self.config.urls, names, strict=True))]
        history = open_store(self.store, read_only=True) if self.store else None
        self.watch = NotificationWatch(self.config, "garden", self.alerts, lambda: dict(self.stats), history,
                                       self.tmp_path, self.tmp_path / "outbox.alerts.json",
                                       clock=lambda: self.now[0])

    def check(self):
        """One round of the watch, then every worker sends what it can."""
        self.watch.check()
        for worker in self.workers:
            while worker.step() == 0.0:
                pass

    def restart(self):
        self.watch.drain(0.0)
        self.start()


def test_the_watch_alerts_on_silence_audio_and_disk_and_sends_a_summary(tmp_path, receiver):
    store = DetectionStore(StoreConfig(path=str(tmp_path / "detections.sqlite"), max_age_days=3650))
    evening = datetime(2026, 6, 15, 20, 59).timestamp()
    for n in range(3):
        store.add(_detection(n, TIT if n else OWL, evening - 3600 + n))
    now = [evening]
    stats = {"detections": 3, "audio_seconds": 100.0, "source_state": "running"}
    config = _notifications(receiver, silent_hours=1.0, no_audio_minutes=10.0, disk_min_free_mb=1e12,
                            summary_time="21:00")
    station = Station(tmp_path, config, stats, now, tmp_path / "detections.sqlite")
    station.check()
    titles = lambda: [r.json()["title"] for r in receiver.accepted()]  # noqa: E731
    assert titles() == ["birdd garden: disk filling up" + titles()[0].split("disk filling up")[1]]
    now[0] += 120  # 21:01: the summary; audio stalled for 2 min only
    station.check()
    summary = receiver.accepted()[-1].json()
    assert summary["title"] == "birdd garden: daily summary"
    assert "2 species, 3 detections" in summary["message"] and "Great Tit: 2" in summary["message"]
    now[0] += 600  # audio unchanged for 12 min
    station.check()
    assert titles()[-1].startswith("birdd garden: no audio for 10 min")
    stats["audio_seconds"] = 800.0
    now[0] += 3600  # audio back; no detection for over an hour
    station.check()
    assert set(titles()[-2:]) == {"birdd garden: audio again", "birdd garden: no detection for 1 h"}
    station.check()
    assert len(titles()) == 5  # each alert once
    now[0] += DAY_S
    station.check()
    assert titles()[-2:] == ["birdd garden: no audio for 10 min (source running)", "birdd garden: daily summary"]
    station.restart()  # the disk and audio alerts are still on, today's summary made: a restart repeats none
    station.check()
    assert len(titles()) == 7
    station.watch.drain(0.0)
    store.close()


def test_alerts_wait_in_their_outbox_through_an_outage_and_a_restart_and_are_not_repeated(tmp_path, receiver):
    store = DetectionStore(StoreConfig(path=str(tmp_path / "detections.sqlite"), max_age_days=3650))
    evening = datetime(2026, 6, 15, 20, 50).timestamp()
    store.add(_detection(0, TIT, evening - 60))
    now = [evening]
    stats = {"detections": 1, "audio_seconds": 100.0, "source_state": "running"}
    config = _notifications(receiver, no_audio_minutes=10.0, disk_min_free_mb=0.0, summary_time="21:00")
    station = Station(tmp_path, config, stats, now, tmp_path / "detections.sqlite")
    station.check()
    receiver.stop()  # the service is down
    now[0] += 11 * 60  # 21:01: no audio for 11 min, and the summary is due
    station.check()
    assert station.alerts.target_counters(target_name(config.urls[0])).backlog == 2
    station.restart()  # the daemon stops (or is killed: every put was fsynced) while the service is down
    now[0] += 60
    station.check()  # nothing new: the alert is still on, the summary made
    receiver.start()
    station.check()
    titles = [r.json()["title"] for r in receiver.accepted()]
    assert titles == ["birdd garden: no audio for 10 min (source running)", "birdd garden: daily summary"]
    stats["audio_seconds"] = 200.0  # audio back after the restart: announced once
    station.check()
    station.restart()
    station.check()
    assert [r.json()["title"] for r in receiver.accepted()][2:] == ["birdd garden: audio again"]
    station.watch.drain(0.0)
    store.close()


def test_a_summary_missed_while_the_daemon_was_down_is_made_at_the_next_start(tmp_path, receiver):
    store = DetectionStore(StoreConfig(path=str(tmp_path / "detections.sqlite"), max_age_days=3650))
    morning = datetime(2026, 6, 15, 9, 0).timestamp()
    store.add(_detection(0, TIT, morning))
    now = [morning]
    config = _notifications(receiver, no_audio_minutes=0.0, disk_min_free_mb=0.0, summary_time="21:00")
    station = Station(tmp_path, config, {}, now, tmp_path / "detections.sqlite")
    station.check()  # the state file now says: no summary yet today
    station.watch.drain(0.0)
    now[0] += 13 * 3600  # 22:00: the daemon was down at 21:00
    station.start()
    station.check()
    assert [r.json()["title"] for r in receiver.accepted()] == ["birdd garden: daily summary"]
    station.watch.drain(0.0)
    (tmp_path / "outbox.alerts.json").unlink()  # a first start after 21:00 leaves the day to tomorrow
    station.start()
    station.check()
    assert len(receiver.accepted()) == 1
    station.watch.drain(0.0)
    store.close()


def test_each_url_is_a_target_of_its_own_so_a_failing_service_duplicates_nothing(tmp_path, make_detection):
    good, flaky, later = Receiver(), Receiver(lambda r: (500, b"no")), Receiver()
    try:
        urls = [f"json://127.0.0.1:{good.port}/a", f"json://127.0.0.1:{flaky.port}/b"]
        config = _notifications(good, urls=urls, new_species=[], species=["grtit1"])
        targets = [_target(config, NotificationRules(config, "garden", None), i) for i in range(2)]
        names = [t.name for t in targets]
        assert len(set(names)) == 2 and all(n.startswith("notifications:json-") for n in names)
        assert str(good.port) not in "".join(names)  # no part of the URL (it may hold a token) in the name
        path = str(tmp_path / "outbox.sqlite")
        outbox = Outbox(OutboxConfig(path=path), targets=names)
        workers = [DeliveryWorker(t, outbox, 1.0, rng=random.Random(i)) for i, t in enumerate(targets)]
        for i in range(3):
            outbox.put(make_detection(i))
        for _ in range(5):
            for worker in workers:
                worker.step()
        assert len(good.accepted()) == 3 and flaky.attempts >= 2  # the good service got each once, meanwhile
        outbox.close()

        # the next start: the URLs in another order, and a third one added; the flaky one works again
        flaky.answer = lambda r: (200, b"{}")
        urls = [urls[1], f"json://127.0.0.1:{later.port}/c", urls[0]]
        config = _notifications(good, urls=urls, new_species=[], species=["grtit1"])
        targets = [_target(config, NotificationRules(config, "garden", None), i) for i in range(3)]
        assert [t.name for t in targets][::2] == names[::-1]  # the names follow the URLs, not their places
        outbox = Outbox(OutboxConfig(path=path), targets=[t.name for t in targets])
        outbox.put(make_detection(3))
        workers = [DeliveryWorker(t, outbox, 1.0, rng=random.Random(i)) for i, t in enumerate(targets)]
        for _ in range(5):
            for worker in workers:
                worker.step()
        detection = lambda r: r.json()["message"]  # noqa: E731
        assert len(good.accepted()) == 4 and len({detection(r) for r in good.accepted()}) == 4  # no repeats
        assert len(flaky.accepted()) == 4  # its backlog, in order, then the new one
        assert len(later.accepted()) == 1  # a new URL starts with the next detection
        assert outbox.backlog() == 0
        outbox.close()
    finally:
        for server in (good, flaky, later):
            server.stop()


def test_a_url_apprise_does_not_know_names_the_key():
    with pytest.raises(ConfigError, match=r"^notifications\.urls\[1\]: not a URL Apprise knows"):
        Notifier("nonsense-scheme://x", 1)



def test_a_damaged_watch_state_starts_with_no_alert_on(tmp_path, receiver, caplog):
    (tmp_path / "outbox.alerts.json").write_text('{"alerting": "disk"')
    config = _notifications(receiver, no_audio_minutes=0.0, disk_min_free_mb=1e12)
    station = Station(tmp_path, config, {}, [datetime(2026, 6, 15, 12, 0).timestamp()])
    station.check()
    assert "cannot read" in caplog.text and [r.json()["title"][:29] for r in receiver.accepted()] == \
        ["birdd garden: disk filling up"]
    station.watch.drain(0.0)


def test_make_outbound_gives_each_url_a_target_and_its_alerts_in_status_and_metrics(tmp_path, receiver):
    urls = [f"json://127.0.0.1:{receiver.port}/a", f"json://127.0.0.1:{receiver.port}/b"]
    config = config_from_dict({
        "mqtt": {"enabled": False}, "outbox": {"path": str(tmp_path / "outbox.sqlite")},
        "store": {"path": str(tmp_path / "detections.sqlite")},
        "notifications": {"enabled": True, "urls": urls, "new_species": [], "species": ["grtit1"]}})
    DetectionStore(config.store).close()  # the daemon's writer has made it by the time the targets are built
    names = [target_name(url) for url in urls]
    assert target_names(config) == names
    outbox = Outbox(config.outbox, targets=target_names(config))
    outbound = make_outbound(config, outbox, dict, None)
    metrics = Metrics()
    outbound.register(metrics)
    outbound.alerts.put({"title": "t", "body": "b"})
    report = outbound.status()["outbound"]
    assert set(report) == set(names) and all(report[n]["alerts"]["backlog"] == 1 for n in names)
    assert metrics.registry.get_sample_value("birdd_outbound_alerts_backlog", {"target": names[1]}) == 1
    assert outbound.components[0].name == "birdd-notify-watch"  # started first, stopped last
    assert (tmp_path / "outbox.alerts.sqlite").exists()
    outbound.alerts.close()
    outbox.close()
