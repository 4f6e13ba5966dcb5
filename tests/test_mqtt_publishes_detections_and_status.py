"""Detections, windows, events, status and Home Assistant discovery reach a real broker as documented."""

import json

import pytest

from daemon.config import config_from_dict
from daemon.sinks.mqtt import MqttPublisher
from daemon.sinks.outbox import Outbox

DETECTION_FIELDS = {"detection_id", "station", "source", "start", "end", "species_code", "common_name",
                    "scientific_name", "confidence", "model", "source_name"}


def test_detections_arrive_in_order_with_the_documented_payload(mosquitto, subscribe, config_table, make_detection):
    config = config_from_dict(config_table(mosquitto, publish_windows=True))
    sub = subscribe(mosquitto, "birdd/test/#")
    outbox = Outbox(config.outbox)
    publisher = MqttPublisher(config, outbox, stats=lambda: {"uptime_s": 12.5, "windows": 7})
    publisher.start()
    sub.wait_for(lambda ms: [m.text for m in ms] == ["online"], topic="birdd/test/status")
    for i in range(5):
        outbox.put(make_detection(i))
    got = sub.wait_for(lambda ms: len(ms) >= 5, topic="birdd/test/detections")
    assert [m.json() for m in got] == [make_detection(i) for i in range(5)]
    assert set(got[0].json()) == DETECTION_FIELDS

    publisher.publish_window({"window_end_sample": 160_000, "top": [["grtit1", 0.9], ["eurrob1", 0.1]]})
    publisher.publish_event("model_reload_failed", "manifest.json: bad version")
    window = sub.wait_for(lambda ms: len(ms) == 1, topic="birdd/test/windows")[0]
    assert window.json()["top"][0] == ["grtit1", 0.9]
    event = sub.wait_for(lambda ms: len(ms) == 1, topic="birdd/test/status/events")[0].json()
    assert (event["kind"], event["message"], event["station"]) == ("model_reload_failed",
                                                                   "manifest.json: bad version", "test")
    stats = sub.wait_for(lambda ms: any(m.json()["mqtt_published"] == 5 for m in ms),
                         topic="birdd/test/status/stats")[-1].json()
    assert stats["uptime_s"] == 12.5 and stats["windows"] == 7
    assert stats["outbox_backlog"] == 0 and stats["outbox_dropped"] == 0 and stats["mqtt_reconnects"] == 0

    counters = publisher.counters()
    assert counters.connected and counters.published == 5 and counters.reconnects == 0
    assert outbox.backlog() == 0  # acked on PUBACK
    publisher.stop()
    outbox.close()


def test_clean_stop_leaves_a_retained_offline(mosquitto, subscribe, config_table):
    config = config_from_dict(config_table(mosquitto))
    outbox = Outbox(config.outbox)
    publisher = MqttPublisher(config, outbox)
    publisher.start()
    sub = subscribe(mosquitto, "birdd/test/status")
    sub.wait_for(lambda ms: ms and ms[-1].text == "online")
    publisher.stop(timeout=3.0)
    assert not publisher.is_alive()
    assert not publisher.counters().connected
    sub.wait_for(lambda ms: ms[-1].text == "offline")
    late = subscribe(mosquitto, "birdd/test/status")
    retained = late.wait_for(lambda ms: len(ms) == 1)[0]
    assert retained.text == "offline" and retained.retain
    outbox.close()


def test_home_assistant_discovery_is_retained_json(mosquitto, subscribe, config_table):
    config = config_from_dict(config_table(mosquitto))
    outbox = Outbox(config.outbox)
    publisher = MqttPublisher(config, outbox)
    publisher.start()
    subscribe(mosquitto, "birdd/test/status").wait_for(lambda ms: ms and ms[-1].text == "online")
    late = subscribe(mosquitto, "homeassistant/#")  # subscribes after the publish: sees retained copies only
    messages = late.wait_for(lambda ms: len(ms) == 3)
    assert all(m.retain for m in messages)
    configs = {m.topic: json.loads(m.payload) for m in messages}
    species = configs["homeassistant/sensor/birdd_test/last_species/config"]
    confidence = configs["homeassistant/sensor/birdd_test/last_confidence/config"]
    connectivity = configs["homeassistant/binary_sensor/birdd_test/connectivity/config"]
    for sensor in (species, confidence):
        assert sensor["state_topic"] == "birdd/test/detections"
        assert sensor["availability_topic"] == "birdd/test/status"
        assert (sensor["payload_available"], sensor["payload_not_available"]) == ("online", "offline")
    assert species["value_template"] == "{{ value_json.common_name }}"
    assert "value_json.confidence" in confidence["value_template"]
    assert connectivity["state_topic"] == "birdd/test/status"
    assert (connectivity["payload_on"], connectivity["payload_off"]) == ("online", "offline")
    assert connectivity["device_class"] == "connectivity"
    unique_ids = {c["unique_id"] for c in configs.values()}
    assert len(unique_ids) == 3
    assert all(c["device"]["identifiers"] == ["birdd_test"] for c in configs.values())
    publisher.stop()
    outbox.close()


@pytest.mark.parametrize("qos", [0, 2])
def test_other_qos_levels_publish_in_order_and_empty_the_outbox(mosquitto, subscribe, config_table, make_detection,
                                                                qos):
    config = config_from_dict(config_table(mosquitto, qos=qos))
    sub = subscribe(mosquitto, "birdd/test/detections")
    outbox = Outbox(config.outbox)
    for i in range(5):
        outbox.put(make_detection(i))
    publisher = MqttPublisher(config, outbox)
    publisher.start()
    got = sub.wait_for(lambda ms: len(ms) >= 5)
    assert [m.json() for m in got] == [make_detection(i) for i in range(5)]
    publisher.stop()
    assert outbox.backlog() == 0 and publisher.counters().published == 5
    outbox.close()
