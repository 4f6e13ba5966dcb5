"""A publisher process SIGKILLed: the broker says "offline" for it, and its backlog survives a restart.

Run as a script, this file is that process: a publisher configured by the JSON in argv[1] that
puts every JSON line of stdin into the outbox and prints the seq once the put has returned.
"""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from daemon.config import OutboxConfig, config_from_dict
from daemon.sinks.mqtt import MqttPublisher
from daemon.sinks.outbox import Outbox

REPO = Path(__file__).parents[1]


class PublisherProcess:
    def __init__(self, table: dict) -> None:
        self.process = subprocess.Popen([sys.executable, __file__, json.dumps(table)], cwd=REPO, text=True,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert self.process.stdout.readline().strip() == "started"

    def put(self, payload: dict) -> int:
        """The seq, once the child's put() has returned (committed)."""
        self.process.stdin.write(json.dumps(payload) + "\n")
        self.process.stdin.flush()
        return int(self.process.stdout.readline())

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)
        self.process.stdin.close()
        self.process.stdout.close()


def test_last_will_says_offline_when_the_publisher_is_killed(mosquitto, subscribe, config_table):
    sub = subscribe(mosquitto, "birdd/test/status")
    child = PublisherProcess(config_table(mosquitto))
    sub.wait_for(lambda ms: ms and ms[-1].text == "online")
    child.kill()
    sub.wait_for(lambda ms: ms[-1].text == "offline", timeout=5)
    retained = subscribe(mosquitto, "birdd/test/status").wait_for(lambda ms: len(ms) == 1)[0]
    assert retained.text == "offline" and retained.retain


def test_backlog_of_a_killed_publisher_is_sent_by_the_next_one(mosquitto, subscribe, config_table,
                                                               make_detection):
    table = config_table(mosquitto)
    sub = subscribe(mosquitto, "birdd/test/detections")
    child = PublisherProcess(table)
    for i in range(20):
        child.put(make_detection(i))
    sub.wait_for(lambda ms: len(ms) >= 20)
    mosquitto.stop()
    for i in range(20, 50):  # the broker is down: these wait in the outbox
        child.put(make_detection(i))
    child.kill()

    outbox = Outbox(OutboxConfig(path=table["outbox"]["path"]))
    assert outbox.backlog() >= 30  # on disk after the kill
    outbox.close()
    mosquitto.start()
    child = PublisherProcess(table)  # same outbox file, nothing new to put
    expected = [make_detection(i)["detection_id"] for i in range(50)]
    assert sub.wait_for_detection_ids(expected, "birdd/test/detections") == expected
    child.kill()


def _child_main(table_json: str) -> None:
    config = config_from_dict(json.loads(table_json))
    outbox = Outbox(config.outbox)
    MqttPublisher(config, outbox).start()
    print("started", flush=True)
    for line in sys.stdin:
        print(outbox.put(json.loads(line)), flush=True)
    time.sleep(3600)  # wait for SIGKILL


if __name__ == "__main__":
    _child_main(sys.argv[1])
