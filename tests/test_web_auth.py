"""Optional bearer-token or basic authentication; the password comes from a file or the environment."""

from __future__ import annotations

import base64
import json
import urllib.request

import pytest
from web_fixtures import ServerThread, fill_store, web_config

from daemon.errors import ConfigError
from daemon.web.auth import Authenticator


def status(url: str, authorization: str | None = None) -> tuple[int, dict, bytes]:
    request = urllib.request.Request(url, headers={"Authorization": authorization} if authorization else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    import numpy as np
    return fill_store(tmp_path_factory.mktemp("station"), np.random.default_rng(5), count=4)


def test_token_mode_wants_the_bearer_token_and_shows_sources_to_it(store, tmp_path):
    secret = tmp_path / "token"
    secret.write_text("s3cret-token\n")
    server = ServerThread(web_config(store, auth="token", password_file=str(secret)))
    try:
        url = f"{server.url}/api/v2/detections/recent"
        code, headers, body = status(url)
        assert code == 401 and headers["WWW-Authenticate"].startswith("Bearer") and json.loads(body)["code"] == 401
        assert status(url, "Bearer wrong")[0] == 401
        assert status(url, basic("", "s3cret-token"))[0] == 401  # token mode takes no basic credentials
        code, _, body = status(url, "Bearer s3cret-token")
        assert code == 200 and all(d["source"]["id"] == "mic:USB Audio" for d in json.loads(body))
        assert status(f"{server.url}/api/v2/ping")[0] == 200  # no data: public, as a health probe
        assert status(f"{server.url}/api/v2/audio/{store.ids[1]}")[0] == 401
    finally:
        server.stop()


def test_basic_mode_with_the_password_from_the_environment(store, monkeypatch):
    monkeypatch.setenv("BIRDD_WEB_PASSWORD", "hunter2")
    server = ServerThread(web_config(store, auth="basic", username="birder"))
    try:
        url = f"{server.url}/api/v2/dashboard/kpis"
        code, headers, _ = status(url)
        assert code == 401 and headers["WWW-Authenticate"] == 'Basic realm="birdd", charset="UTF-8"'
        assert status(url, basic("birder", "wrong"))[0] == 401
        assert status(url, basic("someone", "hunter2"))[0] == 401
        assert status(url, "Basic !!notbase64")[0] == 401
        assert status(url, basic("birder", "hunter2"))[0] == 200
        assert status(url, "Bearer hunter2")[0] == 200  # API clients configured with a key
        assert status(f"{server.url}/", basic("birder", "hunter2"))[0] == 200
    finally:
        server.stop()


def test_no_auth_serves_everyone_but_hides_sources(store):
    server = ServerThread(web_config(store))
    try:
        code, _, body = status(f"{server.url}/api/v2/detections/recent", "Bearer anything")
        assert code == 200 and all("source" not in d for d in json.loads(body))
    finally:
        server.stop()


def test_auth_without_a_password_is_a_config_error(store, monkeypatch, tmp_path):
    monkeypatch.delenv("BIRDD_WEB_PASSWORD", raising=False)
    with pytest.raises(ConfigError, match=r"web\.password_file or the web\.password_env"):
        Authenticator.from_config(web_config(store, auth="token").web)
    with pytest.raises(ConfigError, match=r"web\.password_file: cannot read"):
        Authenticator.from_config(web_config(store, auth="token", password_file=str(tmp_path / "none")).web)
    with pytest.raises(ConfigError, match=r"web\.username"):
        web_config(store, auth="basic")
    with pytest.raises(ConfigError, match=r"web\.read_only"):
        web_config(store, read_only=False)
