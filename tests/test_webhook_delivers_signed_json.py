"""A webhook gets every detection as JSON, in order, signed with HMAC-SHA256 when a key is set; a 5xx or a closed
port is retried with back-off, a 4xx is refused for good (recorded, an event) and the next row goes on."""

import hashlib
import hmac
import json
import random

import pytest
from http_receivers import Receiver

from daemon.config import OutboxConfig, WebhookConfig
from daemon.errors import ConfigError
from daemon.outbound.webhook import SIGNATURE_HEADER, WebhookTarget
from daemon.service.delivery import DeliveryWorker
from daemon.sinks.outbox import Outbox

KEY = "s3cret-key"


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.stop()


def _worker(tmp_path, receiver, events=None, **hook):
    config = WebhookConfig(name="home", url=f"{receiver.url}/hook", **hook)
    target = WebhookTarget(config, 0, environ={"HOOK_KEY": KEY})
    outbox = Outbox(OutboxConfig(path=str(tmp_path / "outbox.sqlite")), targets=(target.name,))
    on_event = None if events is None else (lambda kind, message: events.append((kind, message)))
    return outbox, DeliveryWorker(target, outbox, retry_max_s=1.0, on_event=on_event, rng=random.Random(1))


def _drain(worker, steps=50):
    for _ in range(steps):
        if worker.step() > 0 and not worker.last_error:
            return


def test_each_detection_is_posted_in_order_with_a_verifiable_signature(tmp_path, receiver, make_detection):
    outbox, worker = _worker(tmp_path, receiver, secret_env="HOOK_KEY", headers={"X-Station": "garden"})
    payloads = [make_detection(i) for i in range(5)]
    for payload in payloads:
        outbox.put(payload)
    _drain(worker)
    requests = receiver.accepted()
    assert [r.json() for r in requests] == payloads
    for request in requests:  # what a receiver does to verify (docs/integrations.md)
        expected = "sha256=" + hmac.new(KEY.encode(), request.body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(request.headers[SIGNATURE_HEADER.lower()], expected)
        assert request.headers["x-station"] == "garden"
        assert request.headers["x-birdd-delivery"] == request.json()["detection_id"]
        assert request.headers["content-type"] == "application/json"
    assert outbox.target_counters("webhook:home").delivered == 5 and outbox.backlog() == 0
    outbox.close()


def test_below_min_confidence_is_skipped_and_without_a_key_nothing_is_signed(tmp_path, receiver, make_detection):
    outbox, worker = _worker(tmp_path, receiver, min_confidence=0.52)
    for i in range(4):  # confidences 0.50, 0.51, 0.52, 0.53
        outbox.put(make_detection(i))
    _drain(worker)
    assert [r.json()["confidence"] for r in receiver.accepted()] == [0.52, 0.53]
    assert SIGNATURE_HEADER.lower() not in receiver.accepted()[0].headers
    counters = outbox.target_counters("webhook:home")
    assert (counters.delivered, counters.skipped, counters.backlog) == (2, 2, 0)
    outbox.close()


def test_a_server_error_is_retried_and_a_client_error_refused_without_blocking(tmp_path, receiver, make_detection):
    events = []
    outbox, worker = _worker(tmp_path, receiver, events)
    payloads = [make_detection(i) for i in range(3)]
    for payload in payloads:
        outbox.put(payload)
    receiver.answer = lambda request: (503, b"busy")
    assert worker.step() > 0 and "HTTP 503" in worker.last_error
    receiver.stop()  # now nothing listens
    assert worker.step() > 0 and "cannot connect" in worker.last_error
    receiver.start()
    bad = payloads[1]["detection_id"]
    receiver.answer = lambda request: (400, b'{"error": "no"}') if request.json()["detection_id"] == bad else (200, b"")
    _drain(worker)
    assert [r.json()["detection_id"] for r in receiver.accepted()] == [payloads[0]["detection_id"],
                                                                       payloads[2]["detection_id"]]
    assert worker.retried == 2 and worker.last_error == ""
    (_, reason, kept), = outbox.refused_rows("webhook:home")
    assert kept == payloads[1] and reason.startswith("HTTP 400") and '{"error": "no"}' in reason
    kinds = [kind for kind, _ in events]
    assert kinds == ["outbound_failing", "outbound_recovered", "outbound_refused"]
    assert json.dumps(payloads[1]["detection_id"])[1:-1] in events[-1][1]
    outbox.close()


def test_an_unreadable_secret_file_names_the_key(tmp_path):
    config = WebhookConfig(name="x", url="http://127.0.0.1:1/", secret_file=str(tmp_path / "missing.key"))
    with pytest.raises(ConfigError, match=r"^webhooks\[3\]\.secret_file: cannot read"):
        WebhookTarget(config, 3)
