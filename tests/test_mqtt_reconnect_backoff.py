"""Reconnect delays grow, are capped and jittered; a broker that is down gets no reconnect storm."""

import logging
import re
import time

import numpy as np
import pytest

from daemon.backoff import Backoff
from daemon.config import config_from_dict
from daemon.sinks.mqtt import MqttPublisher
from daemon.sinks.outbox import Outbox


def test_delays_double_within_their_jitter_band_up_to_the_cap(rng):
    backoffs = [Backoff(1.0, 30.0, rng) for _ in range(200)]
    delays = np.array([[b.next_delay() for b in backoffs] for _ in range(8)])  # attempt x client
    nominal = np.minimum(30.0, 2.0 ** np.arange(8))[:, None]
    assert np.all(delays >= nominal / 2) and np.all(delays <= nominal)
    assert delays.max() <= 30.0
    assert np.all(np.diff(np.median(delays, axis=1))[:4] > 0)  # grows while below the cap
    assert np.all(delays.std(axis=1) > nominal[:, 0] / 10)  # jittered: clients do not retry in lock-step
    assert np.median(delays[-1]) > 15.0  # at the cap


def test_reset_starts_again_from_the_first_delay(rng):
    backoff = Backoff(0.5, 8.0, rng)
    for _ in range(6):
        backoff.next_delay()
    backoff.reset()
    assert 0.25 <= backoff.next_delay() <= 0.5


def test_bad_bounds_are_refused():
    with pytest.raises(ValueError, match="initial_s"):
        Backoff(2.0, 1.0)


def test_publisher_retries_a_down_broker_with_growing_capped_delays(config_table, mosquitto, caplog, rng):
    mosquitto.stop()  # a port where nothing listens
    config = config_from_dict(config_table(mosquitto, reconnect_min_s=0.05, reconnect_max_s=0.4))
    outbox = Outbox(config.outbox)
    publisher = MqttPublisher(config, outbox, rng=rng)
    with caplog.at_level(logging.WARNING, logger="daemon.sinks.mqtt"):
        publisher.start()
        time.sleep(2.0)
        publisher.stop(timeout=2.0)
    delays = [float(re.search(r"retrying in ([\d.]+) s", r.getMessage()).group(1)) for r in caplog.records
              if "cannot connect" in r.getMessage()]
    # 0.05 + 0.1 + 0.2 + 0.4 + 0.4 ... at most: with jitter about 6 to 10 attempts in 2 s, never a storm
    assert 4 <= len(delays) <= 14, delays
    assert delays[0] <= 0.05 and max(delays) <= 0.4
    assert delays[:4] == sorted(delays[:4])
    assert "Connection refused" in publisher.counters().last_error
    assert not publisher.is_alive()
    outbox.close()


def test_two_publishers_sharing_a_client_id_do_not_storm(config_table, mosquitto, tmp_path):
    """The broker drops the older of two clients with one id: short-lived connections keep the back-off growing."""
    publishers, outboxes = [], []
    for name in ("a", "b"):
        table = config_table(mosquitto, client_id="shared", reconnect_min_s=0.05, reconnect_max_s=0.4)
        table["outbox"]["path"] = str(tmp_path / f"{name}.sqlite")
        config = config_from_dict(table)
        outboxes.append(Outbox(config.outbox))
        publishers.append(MqttPublisher(config, outboxes[-1]))
    for publisher in publishers:
        publisher.start()
    time.sleep(2.0)
    reconnects = sum(publisher.counters().reconnects for publisher in publishers)
    for publisher, outbox in zip(publishers, outboxes, strict=True):
        publisher.stop(timeout=1.0)
        outbox.close()
    # growing delays (0.05, 0.1, 0.2, 0.4, 0.4 ...) allow about 8 reconnects each in 2 s; restarting
    # the back-off on every connect gave 52 in this test
    assert 2 <= reconnects <= 20, reconnects
