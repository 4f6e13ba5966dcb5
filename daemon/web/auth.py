"""Optional authentication of ``birdd web``: none, a bearer token, or HTTP basic (user name and password)."""

from __future__ import annotations

import base64
import binascii
import hmac

from daemon.config import WebConfig
from daemon.errors import ConfigError
from daemon.passwords import read_password


class Authenticator:
    """Checks a request's ``Authorization`` header against ``[web]`` (constant-time comparisons)."""

    def __init__(self, mode: str, username: str = "", secret: str | None = None):
        if mode != "none" and not secret:
            raise ConfigError(f'web.auth = "{mode}" needs a password: set web.password_file or the web.password_env '
                              "variable")
        self.mode = mode
        self._username = username.encode()
        self._secret = (secret or "").encode()

    @classmethod
    def from_config(cls, web: WebConfig) -> Authenticator:
        """The authenticator ``[web]`` asks for (reads the password file or variable once)."""
        secret = None if web.auth == "none" else read_password(web.password_file, web.password_env, "web")
        return cls(web.auth, web.username, secret)

    @property
    def required(self) -> bool:
        """Whether requests must authenticate."""
        return self.mode != "none"

    def challenge(self) -> str:
        """The ``WWW-Authenticate`` header of a 401."""
        return 'Basic realm="birdd", charset="UTF-8"' if self.mode == "basic" else 'Bearer realm="birdd"'

    def accepts(self, authorization: str | None) -> bool:
        """Whether the header authenticates: ``Bearer <secret>`` in both modes, ``Basic`` in basic mode."""
        if not self.required or not authorization:
            return False
        scheme, _, value = authorization.strip().partition(" ")
        if scheme.lower() == "bearer":
            return hmac.compare_digest(value.strip().encode(), self._secret)
        if scheme.lower() == "basic" and self.mode == "basic":
            try:
                user, _, password = base64.b64decode(value.strip(), validate=True).partition(b":")
            except (binascii.Error, ValueError):
                return False
            return hmac.compare_digest(user, self._username) & hmac.compare_digest(password, self._secret)
        return False
