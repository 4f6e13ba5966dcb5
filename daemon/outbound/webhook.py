"""Webhooks: each detection POSTed as JSON, optionally signed with HMAC-SHA256 (docs/integrations.md).

The signature is ``X-Birdd-Signature-256: sha256=<hex HMAC-SHA256 of the raw body under the key>``, as GitHub
signs its webhooks; ``X-Birdd-Delivery`` carries the detection id, the same on every retry, so a receiver can
drop the duplicates at-least-once delivery brings.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Mapping
from typing import Any

from daemon.config import WebhookConfig
from daemon.outbound.http_post import post
from daemon.passwords import read_password

SIGNATURE_HEADER = "X-Birdd-Signature-256"
DELIVERY_HEADER = "X-Birdd-Delivery"


def signature(key: bytes, body: bytes) -> str:
    """The value of :data:`SIGNATURE_HEADER` for ``body``."""
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


class WebhookTarget:
    """POSTs the detection payload to one URL."""

    def __init__(self, config: WebhookConfig, index: int, environ: Mapping[str, str] = os.environ) -> None:
        self.name = f"webhook:{config.name}"
        self._config = config
        secret = read_password(config.secret_file, config.secret_env, f"webhooks[{index}]", environ,
                               key="secret_file")
        self._key = secret.encode() if secret else None

    def send(self, payload: dict[str, Any]) -> bool:
        """POST ``payload`` (False, not sent, below ``min_confidence``)."""
        if payload.get("confidence", 1.0) < self._config.min_confidence:
            return False
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json", DELIVERY_HEADER: str(payload.get("detection_id", "")),
                   **self._config.headers}
        if self._key is not None:
            headers[SIGNATURE_HEADER] = signature(self._key, body)
        post(self._config.url, body, headers, self._config.timeout_s)
        return True
