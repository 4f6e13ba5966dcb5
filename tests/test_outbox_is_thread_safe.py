"""Producers on several threads and one consumer acking concurrently: every row is handed out once, in order."""

import threading

from daemon.config import OutboxConfig
from daemon.sinks.outbox import Outbox

PRODUCERS = 4
PER_PRODUCER = 50


def test_concurrent_puts_and_acks_lose_nothing(tmp_path, make_detection):
    outbox = Outbox(OutboxConfig(path=str(tmp_path / "outbox.sqlite")))
    total = PRODUCERS * PER_PRODUCER
    seen: list[int] = []
    payloads: list[dict] = []

    def produce(first: int) -> None:
        for i in range(first, first + PER_PRODUCER):
            outbox.put(make_detection(i))

    def consume() -> None:  # the MQTT thread's pattern: a cursor on seq, ack after "publishing"
        cursor = 0
        while len(seen) < total:
            for seq, payload in outbox.pending(8, after=cursor):
                seen.append(seq)
                payloads.append(payload)
                cursor = seq
                outbox.ack(seq)

    threads = [threading.Thread(target=produce, args=(k * PER_PRODUCER,)) for k in range(PRODUCERS)]
    consumer = threading.Thread(target=consume)
    for thread in [consumer, *threads]:
        thread.start()
    for thread in [*threads, consumer]:
        thread.join(30)
    assert not consumer.is_alive()
    assert seen == sorted(seen) and len(set(seen)) == total
    assert sorted(p["detection_id"] for p in payloads) == sorted(make_detection(i)["detection_id"]
                                                                 for i in range(total))
    assert outbox.backlog() == 0
    outbox.close()
