"""The broker goes away for a few seconds mid-stream: every detection still arrives, in order."""

import threading
import time
from collections.abc import Callable

from daemon.config import config_from_dict
from daemon.sinks.mqtt import MAX_INFLIGHT, MqttPublisher
from daemon.sinks.outbox import Outbox

DETECTIONS = 80
PUT_INTERVAL_S = 0.05
OUTAGE_S = 3.0


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_outage_mid_stream_delays_but_loses_and_reorders_nothing(mosquitto, subscribe, config_table,
                                                                   make_detection):
    config = config_from_dict(config_table(mosquitto))
    outbox = Outbox(config.outbox)
    publisher = MqttPublisher(config, outbox)
    sub = subscribe(mosquitto, "birdd/test/detections", "birdd/test/status", "homeassistant/#")
    publisher.start()

    put_seconds: list[float] = []

    def feed() -> None:  # the classifier thread
        for i in range(DETECTIONS):
            started = time.monotonic()
            outbox.put(make_detection(i))
            put_seconds.append(time.monotonic() - started)
            time.sleep(PUT_INTERVAL_S)

    feeder = threading.Thread(target=feed)
    feeder.start()
    sub.wait_for(lambda ms: len(ms) >= 10, topic="birdd/test/detections")
    mosquitto.stop()
    time.sleep(OUTAGE_S)
    assert not publisher.counters().connected
    assert outbox.backlog() > 0
    mosquitto.start()
    feeder.join()
    assert max(put_seconds) < 0.5  # put() never waits on the broker

    expected = [make_detection(i)["detection_id"] for i in range(DETECTIONS)]
    assert sub.wait_for_detection_ids(expected, "birdd/test/detections") == expected
    counters = publisher.counters()
    assert counters.connected and counters.reconnects == 1
    assert "connection lost" in counters.last_error or "cannot connect" in counters.last_error
    # "online" and the discovery configs are published again on the new connection
    sub.wait_for(lambda ms: [m.text for m in ms].count("online") >= 2, topic="birdd/test/status")
    discovery = sub.messages("homeassistant/sensor/birdd_test/last_species/config")
    assert len(discovery) >= 2
    publisher.stop()
    assert outbox.backlog() == 0
    outbox.close()


def test_detections_in_flight_when_the_broker_dies_are_resent_in_order(mosquitto, subscribe, config_table,
                                                                       make_detection):
    config = config_from_dict(config_table(mosquitto))
    outbox = Outbox(config.outbox)
    publisher = MqttPublisher(config, outbox)
    sub = subscribe(mosquitto, "birdd/test/detections")
    mosquitto.restart()  # SIGTERM saves the subscriber's session: it survives the SIGKILL below
    publisher.start()
    wait_until(lambda: publisher.counters().connected)
    mosquitto.freeze()
    for i in range(40):
        outbox.put(make_detection(i))
    wait_until(lambda: publisher.counters().inflight >= MAX_INFLIGHT)
    time.sleep(0.3)
    assert publisher.counters().inflight == MAX_INFLIGHT  # bounded: the other 24 wait in the outbox
    assert outbox.backlog() == 40
    mosquitto.kill()  # the 16 in flight were never acknowledged
    mosquitto.start()

    expected = [make_detection(i)["detection_id"] for i in range(40)]
    assert sub.wait_for_detection_ids(expected, "birdd/test/detections") == expected
    publisher.stop()
    assert outbox.backlog() == 0
    outbox.close()
