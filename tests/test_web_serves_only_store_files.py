"""No path from a request reaches the file system: clips and spectrograms are found by detection id in the
store, and even a hostile file name in the store (``..``, absolute, encoded, symbolic links) serves nothing."""

from __future__ import annotations

import http.client
import json
import os
import threading
import time

import numpy as np
import pytest
from web_fixtures import ServerThread, fill_store, web_config

SECRET = b"fLaC-not-for-you"


@pytest.fixture(scope="module")
def station(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("web")
    store = fill_store(tmp_path / "station", np.random.default_rng(3), count=3)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.flac").write_bytes(SECRET)
    (outside / "secret.png").write_bytes(SECRET)
    (tmp_path / "station" / "secret.flac").write_bytes(SECRET)  # beside the clips folder
    (store.clips / "linked.flac").symlink_to(outside / "secret.flac")
    (store.clips / "linkdir").symlink_to(outside, target_is_directory=True)
    (store.clips / "notes.txt").write_bytes(SECRET)
    server = ServerThread(web_config(store))
    yield store, server, outside
    server.stop()


def fetch(server, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict, bytes]:
    host, port = server.server.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=10)
    conn.request("GET", path, headers=headers or {})  # sent as written: no client-side normalisation
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return response.status, dict(response.headers), body


def hostile_row(store, name: str) -> int:
    """A detection whose clip and spectrogram names in the store are ``name`` (as if the store were tampered)."""
    row_id = store.add(0, 1.0e9 + len(store.ids), 0.9, clip=False)
    store.writer._conn.execute("UPDATE detections SET clip = ?, spectrogram = ? WHERE id = ?",
                               (name, name.replace(".flac", ".png"), row_id))
    return row_id


@pytest.mark.parametrize("name", ["../secret.flac", "../../outside/secret.flac", "/{outside}/secret.flac",
                                  "%2e%2e/secret.flac", "..%2Fsecret.flac", "linked.flac", "linkdir/secret.flac",
                                  "./linked.flac", "notes.txt", "", "2026-01-01/../../secret.flac",
                                  "..\\secret.flac", "a\x00.flac"])
def test_hostile_names_in_the_store_serve_nothing(station, name):
    store, server, outside = station
    row_id = hostile_row(store, name.replace("/{outside}", str(outside)))
    for kind in ("audio", "spectrogram"):
        status, _, body = fetch(server, f"/api/v2/{kind}/{row_id}")
        assert status == 404, (name, kind, body)
        assert SECRET not in body and json.loads(body)["code"] == 404


@pytest.mark.parametrize("path", ["/api/v2/audio/../../etc/passwd", "/api/v2/audio/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
                                  "/api/v2/audio//etc/passwd", "/api/v2/audio/1/../../../secret.flac",
                                  "/api/v2/audio/1%2f..%2f..%2fsecret.flac", "/api/v2/spectrogram/-1",
                                  "/api/v2/audio/0x1", "/api/v2/audio/1.flac", "/static/../secret.flac",
                                  "/../secret.flac", "//etc/passwd", "/api/v2/audio/%00"])
def test_request_paths_never_reach_files(station, path):
    _, server, _ = station
    status, _, body = fetch(server, path)
    assert status in (400, 404) and SECRET not in body and b"root:" not in body


def test_a_kept_clip_and_spectrogram_are_served_with_ranges(station):
    store, server, _ = station
    row_id = store.ids[0]
    clip_name = store.writer._conn.execute("SELECT clip FROM detections WHERE id = ?", (row_id,)).fetchone()[0]
    expected = (store.clips / clip_name).read_bytes()
    status, headers, body = fetch(server, f"/api/v2/audio/{row_id}")
    assert (status, headers["Content-Type"], body) == (200, "audio/flac", expected)
    status, headers, body = fetch(server, f"/api/v2/audio/{row_id}", {"Range": "bytes=10-19"})
    assert (status, headers["Content-Range"], body) == (206, f"bytes 10-19/{len(expected)}", expected[10:20])
    status, _, body = fetch(server, f"/api/v2/audio/{row_id}", {"Range": "bytes=-4"})
    assert (status, body) == (206, expected[-4:])
    status, _, _ = fetch(server, f"/api/v2/audio/{row_id}", {"Range": f"bytes={len(expected)}-"})
    assert status == 416
    status, headers, body = fetch(server, f"/api/v2/spectrogram/{row_id}?size=sm")
    assert status == 200 and headers["Content-Type"] == "image/png" and body.startswith(b"\x89PNG")


def test_a_detection_without_a_clip_or_whose_clip_was_deleted_is_404(station):
    store, server, _ = station
    no_clip = store.add(1, 1.0e9, 0.8, clip=False)
    assert fetch(server, f"/api/v2/audio/{no_clip}")[0] == 404
    row_id = store.ids[1]
    clip_name = store.writer._conn.execute("SELECT clip FROM detections WHERE id = ?", (row_id,)).fetchone()[0]
    os.unlink(store.clips / clip_name)  # retention deleted the file
    status, _, body = fetch(server, f"/api/v2/audio/{row_id}")
    assert status == 404 and "deleted by retention" in json.loads(body)["error"]


def test_a_clip_still_being_written_is_waited_for(station):
    store, server, _ = station
    row_id = store.add(2, time.time() - 1, 0.9)
    clip_name = store.writer._conn.execute("SELECT clip FROM detections WHERE id = ?", (row_id,)).fetchone()[0]
    written = (store.clips / clip_name).read_bytes()
    os.unlink(store.clips / clip_name)  # the row is committed, the clip lands a moment later
    threading.Timer(0.8, lambda: (store.clips / clip_name).write_bytes(written)).start()
    started = time.monotonic()
    status, _, body = fetch(server, f"/api/v2/audio/{row_id}")
    assert (status, body) == (200, written) and 0.7 < time.monotonic() - started < 3
