"""One HTTP POST with the outbound failure classes: 2xx is done, 408/429/5xx and network faults are retried,
another 4xx is a refusal. Messages never carry the URL (a BirdWeather URL holds the station token)."""

from __future__ import annotations

import http.client
import urllib.error
import urllib.request
from collections.abc import Mapping

from daemon import __version__
from daemon.outbound.base import Refused, RetryLater

RETRIED_4XX = (408, 429)
"""client errors that are worth retrying (request timeout, too many requests)"""
BODY_SHOWN = 200
"""characters of an error response's body kept in the message"""
USER_AGENT = f"birdd/{__version__}"


def post(url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> bytes:
    """POST ``body`` to ``url``; the response body on 2xx, else :class:`RetryLater` or :class:`Refused`."""
    request = urllib.request.Request(url, data=body, method="POST", headers={"User-Agent": USER_AGENT, **headers})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.read()
    except urllib.error.HTTPError as exc:
        detail = exc.read(BODY_SHOWN).decode("utf-8", "replace").strip()
        message = f"HTTP {exc.code} {exc.reason}" + (f": {detail}" if detail else "")
        if 400 <= exc.code < 500 and exc.code not in RETRIED_4XX:
            raise Refused(message) from None
        raise RetryLater(message) from None
    except urllib.error.URLError as exc:
        raise RetryLater(f"cannot connect: {exc.reason}") from None
    except TimeoutError:
        raise RetryLater(f"no answer within {timeout:g} s") from None
    except (OSError, http.client.HTTPException) as exc:
        raise RetryLater(f"connection failed: {exc}") from None
