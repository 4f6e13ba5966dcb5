"""The live stream (SSE) sends ``connected``, then each detection the daemon commits, then heartbeats."""

from __future__ import annotations

import time

import pytest
from web_fixtures import ServerThread, SseClient, fill_store, web_config

import daemon.web.sse as sse


@pytest.fixture
def station(tmp_path, rng):
    store = fill_store(tmp_path, rng, count=3)
    server = ServerThread(web_config(store, sse_poll_s=0.1, max_streams=2))
    yield store, server
    server.stop()


def test_a_committed_detection_reaches_the_stream_within_a_second(station):
    store, server = station
    client = SseClient(server.url)
    try:
        assert client.status == 200 and "Content-Type: text/event-stream" in client.headers
        name, data, _ = client.event()
        assert name == "connected" and data["type"] == "detections" and data["clientId"]
        delays = []
        for species in range(3):
            committed = time.monotonic()
            row_id = store.add(species, time.time() - 1, 0.9)
            name, data, event_id = client.event()
            delays.append(time.monotonic() - committed)
            assert (name, data["id"], event_id) == ("detection", row_id, str(row_id))
            assert data["eventType"] == "new_detection" and data["commonName"] and data["clipName"]
        assert max(delays) < 1.0, delays
    finally:
        client.close()


def test_heartbeats_and_resuming_after_the_last_event_id(station, monkeypatch):
    store, server = station
    monkeypatch.setattr(sse, "HEARTBEAT_S", 0.3)
    first, second = store.add(0, time.time() - 3, 0.8), store.add(1, time.time() - 2, 0.7)
    client = SseClient(server.url, last_event_id=first)
    try:
        assert client.event()[0] == "connected"
        name, data, _ = client.event()
        assert (name, data["id"]) == ("detection", second)  # what it missed, then live
        name, data, _ = client.event()
        assert name == "heartbeat" and data["clients"] == 1 and data["timestamp"] > 0
    finally:
        client.close()


def test_streams_beyond_the_bound_get_503_and_a_gone_client_frees_its_slot(station, monkeypatch):
    _, server = station
    monkeypatch.setattr(sse, "HEARTBEAT_S", 0.2)
    clients = [SseClient(server.url) for _ in range(2)]
    try:
        third = SseClient(server.url)
        assert third.status == 503
        third.close()
    finally:
        for client in clients:
            client.close()
    deadline = time.monotonic() + 5
    while server.server.stream_clients() and time.monotonic() < deadline:
        time.sleep(0.1)  # a gone client is noticed at the next write (a heartbeat at the latest)
    assert server.server.stream_clients() == 0
    fourth = SseClient(server.url)
    assert fourth.status == 200
    fourth.close()
