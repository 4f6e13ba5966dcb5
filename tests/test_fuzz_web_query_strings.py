"""Random query strings on every ``birdd web`` API route: an answer (200, or 404 for an id that is not
there) or a one-line JSON 400; never a 500, a traceback or a hang."""

from __future__ import annotations

import http.client
import json
from urllib.parse import quote, urlsplit

import numpy as np
import pytest
from fuzz_support import TRIED, fuzz_settings, no_hang
from hypothesis import given
from hypothesis import strategies as st
from web_fixtures import ServerThread, fill_store, web_config

pytestmark = pytest.mark.integration

ROUTES = {  # path -> the parameter names it accepts (daemon/web/server.py ROUTES) plus a few it does not
    "/ping": (), "/health": (), "/dashboard/kpis": (), "/system/info": (),
    "/detections": ("limit", "numResults", "offset", "date", "species", "confidence", "min_confidence", "hour",
                    "sortBy", "queryType", "includeWeather", "search", "source"),
    "/detections/recent": ("limit", "includeWeather"),
    "/detections/1": ("includeWeather",), "/detections/999999": (),
    "/analytics/species/daily": ("date", "min_confidence", "limit"),
    "/analytics/species/summary": ("start_date", "end_date", "limit"),
    "/audio/1": (), "/audio/2": (), "/spectrogram/1": ("size", "raw"), "/spectrogram/3": ("size",),
}
MEDIA = ("/audio/", "/spectrogram/")

values = st.one_of(
    st.integers(-(10**12), 10**12).map(str),
    st.sampled_from(["", "0", "1", "100", "1001", "nan", "inf", "-1", "1e3", ">=50", "<=101", "=0", "!=5", "6-9",
                     "9-6", "24", "2026-02-30", "2026-12-01", "yesterday", "true", "false", "date_desc", "hybrid",
                     "sm", "md", "lg", "xl", "huge", "%", "%ff", "%00", "'--", "\u00e9", "a" * 300]),
    st.text(max_size=12),
)


@st.composite
def query_strings(draw: st.DrawFn, accepted: tuple[str, ...]) -> str:
    """Mostly ``name=value`` pairs (accepted names, unknown ones, repeats), sometimes raw junk."""
    if draw(st.integers(0, 5)) == 0:
        return draw(st.text(max_size=60).map(lambda t: quote(t, safe="=&%")))
    names = st.sampled_from([*accepted, "x", "limit", "path", ""]) if accepted else st.sampled_from(["x", "", "a"])
    pairs = draw(st.lists(st.tuples(names, values), max_size=4))
    return "&".join(f"{quote(name)}={quote(value, safe='%')}" for name, value in pairs)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    store = fill_store(tmp_path_factory.mktemp("station"), np.random.default_rng(11), count=8)
    server = ServerThread(web_config(store))
    yield urlsplit(server.url)
    server.stop()


def _get(server, target: str) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection(server.hostname, server.port, timeout=10)
    try:
        connection.request("GET", target)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@fuzz_settings(150)
@given(data=st.data())
def test_fuzzed_query_strings_are_answered_or_refused_in_one_line(server, data):
    path = data.draw(st.sampled_from(sorted(ROUTES)))
    query = data.draw(query_strings(ROUTES[path]))
    target = f"/api/v2{path}?{query}" if query else f"/api/v2{path}"
    TRIED["web query string"] += 1
    with no_hang(target):
        status, body = _get(server, target)
    assert status in (200, 400, 404), (target, status, body[:300])
    assert b"Traceback" not in body
    if status == 200 and path.startswith(MEDIA):
        return
    document = json.loads(body)
    if status != 200:
        assert body.count(b"\n") == 0 and document["code"] == status and document["error"], (target, body)
