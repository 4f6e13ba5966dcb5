"""Wrong credentials are reported and retried with back-off, never a crash, and the outbox keeps everything."""

import logging
import re
import time

import pytest

from daemon.config import config_from_dict
from daemon.errors import ConfigError
from daemon.sinks.mqtt import MqttPublisher
from daemon.sinks.outbox import Outbox

USER, PASSWORD = "birdd", "correct horse"
ATTEMPTS = 3


def test_refused_connection_is_logged_retried_and_loses_nothing(make_broker, subscribe, config_table,
                                                                make_detection, tmp_path, monkeypatch, caplog):
    broker = make_broker(users={USER: PASSWORD})
    wrong = tmp_path / "wrong_password"
    wrong.write_text("battery staple\n")
    config = config_from_dict(config_table(broker, username=USER, password_file=str(wrong),
                                           reconnect_min_s=0.1, reconnect_max_s=0.4))
    outbox = Outbox(config.outbox)
    for i in range(3):
        outbox.put(make_detection(i))
    publisher = MqttPublisher(config, outbox)
    with caplog.at_level(logging.WARNING, logger="daemon.sinks.mqtt"):
        publisher.start()
        for _ in range(100):
            refusals = [r for r in caplog.records if "refused the connection" in r.getMessage()]
            if len(refusals) >= ATTEMPTS:
                break
            time.sleep(0.05)
    assert len(refusals) >= ATTEMPTS, [r.getMessage() for r in caplog.records]
    assert "Not authorized" in refusals[0].getMessage()
    assert publisher.is_alive()
    counters = publisher.counters()
    assert not counters.connected and "Not authorized" in counters.last_error and counters.published == 0
    publisher.stop(timeout=2.0)
    assert outbox.backlog() == 3

    # the right password, from the environment this time: the three detections go out
    monkeypatch.setenv("BIRDD_TEST_PASSWORD", PASSWORD)
    config = config_from_dict(config_table(broker, username=USER, password_env="BIRDD_TEST_PASSWORD"))
    sub = subscribe(broker, "birdd/test/detections", auth=(USER, PASSWORD))
    publisher = MqttPublisher(config, outbox)
    publisher.start()
    got = sub.wait_for(lambda ms: len(ms) >= 3)
    assert [m.json() for m in got] == [make_detection(i) for i in range(3)]
    publisher.stop()
    assert outbox.backlog() == 0
    outbox.close()


def test_unreadable_password_file_is_a_config_error_naming_it(tmp_path, config_table):
    missing = tmp_path / "no_such_password"
    config = config_from_dict(config_table(None, username=USER, password_file=str(missing)))
    outbox = Outbox(config.outbox)
    with pytest.raises(ConfigError, match=re.escape(f"mqtt.password_file: cannot read {missing}")):
        MqttPublisher(config, outbox)
    outbox.close()


def test_unreadable_tls_file_is_a_config_error_naming_it(tmp_path, config_table):
    missing = tmp_path / "ca.pem"
    config = config_from_dict(config_table(None, tls=True, ca_file=str(missing)))
    outbox = Outbox(config.outbox)
    with pytest.raises(ConfigError, match=re.escape(f"mqtt.ca_file: cannot read {missing}")):
        MqttPublisher(config, outbox)
    outbox.close()
