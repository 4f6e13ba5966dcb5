"""After a long outage a target's retry intervals have grown to its ``retry_max_s`` and no further, and the first
retry after it is back comes within that cap. A real webhook target posts to a real receiver that answers 503
until the simulated clock reaches the end of the outage; the clock advances by each delay the worker asks for,
so hours of outage take a fraction of a second."""

import random

import pytest
from http_receivers import Receiver

from daemon.config import OutboxConfig, WebhookConfig
from daemon.outbound.webhook import WebhookTarget
from daemon.service.delivery import RETRY_MIN_S, DeliveryWorker
from daemon.sinks.outbox import Outbox

CAP_S = 300.0
OUTAGE_S = 3 * 3600.0


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_retry_intervals_reach_the_cap_and_no_further_and_recovery_comes_within_it(tmp_path, make_detection,
                                                                                     seed):
    now = [0.0]
    receiver = Receiver(lambda request: (503, b"down") if now[0] < OUTAGE_S else (200, b"{}"))
    try:
        target = WebhookTarget(WebhookConfig(name="home", url=f"{receiver.url}/hook", retry_max_s=CAP_S), 0)
        outbox = Outbox(OutboxConfig(path=str(tmp_path / "outbox.sqlite")), targets=(target.name,))
        for i in range(3):
            outbox.put(make_detection(i))
        worker = DeliveryWorker(target, outbox, CAP_S, rng=random.Random(seed))
        delays = []
        while not receiver.accepted():
            delay = worker.step()
            delays.append(delay)
            now[0] += delay
        recovered_at = now[0]
        for _ in range(3):
            worker.step()
        idle, error_after = worker.step(), worker.last_error
        now[0] = 0.0  # down again: the back-off starts from the beginning
        outbox.put(make_detection(3))
        after_reset = worker.step()
    finally:
        receiver.stop()
    assert all(RETRY_MIN_S / 2 <= d <= CAP_S for d in delays[:-1]), max(delays)
    doublings = next(n for n in range(64) if RETRY_MIN_S * 2 ** n >= CAP_S)  # failures before the cap is reached
    assert all(d >= CAP_S / 2 for d in delays[doublings:-1])  # at the cap: jitter keeps it in [cap/2, cap]
    assert max(delays) > 0.9 * CAP_S  # and it does get there
    assert delays[:3] == sorted(delays[:3]) and delays[0] <= RETRY_MIN_S  # it starts small and grows
    assert OUTAGE_S <= recovered_at < OUTAGE_S + CAP_S  # the first send after the outage: within the cap
    assert receiver.attempts == len(delays) + 3 and len(receiver.accepted()) == 3  # one try per delay, then the rest
    assert error_after == "" and outbox.target_counters(target.name).delivered == 3
    assert idle > 0 and after_reset <= RETRY_MIN_S  # idle, then the back-off was reset by the success
    outbox.close()
