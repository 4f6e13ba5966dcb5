"""The one helper that keeps the credentials of a stream URL out of logs, events, status and payloads."""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/\s@]*)@")
MASK = "***"


def mask_credentials(text: str, url: str = "") -> str:
    """``text`` with the ``user:password@`` of every URL in it replaced by ``***@``.

    With ``url`` (the configured stream URL), its password is also masked where it appears outside a URL
    (as typed or percent-decoded: FFmpeg prints either in some errors).
    """
    masked = _USERINFO.sub(lambda m: f"{m['scheme']}{MASK}@", text)
    for secret in _secrets(url):
        masked = masked.replace(secret, MASK)
    return masked


def _secrets(url: str) -> list[str]:
    """The password of ``url`` as written and decoded (long enough not to mask ordinary words), longest first."""
    try:
        password = urlsplit(url).password
    except ValueError:
        return []
    if not password:
        return []
    forms = {password, unquote(password)}
    return sorted((form for form in forms if len(form) >= 3), key=len, reverse=True)
