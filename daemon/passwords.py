"""Passwords and tokens from a file or an environment variable, never from the configuration file itself."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from daemon.errors import ConfigError


def read_password(password_file: str, password_env: str, section: str,
                  environ: Mapping[str, str] = os.environ, *, key: str = "password_file") -> str | None:
    """The secret in ``password_file`` if set, else in the ``password_env`` variable (None if neither holds one).

    ``section`` and ``key`` name the configuration key in the error for an unreadable file
    (``web.password_file: ...``).
    """
    if password_file:
        try:
            return Path(password_file).read_text(encoding="utf-8").rstrip("\r\n")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{section}.{key}: cannot read {password_file}: {exc}") from None
    return environ.get(password_env) if password_env else None
