"""A schemathesis hook that signs every call as a payment gateway does, so the fuzzing
reaches the webhook's body past its signature check (``tests/test_web_schemathesis.py``
loads it with ``SCHEMATHESIS_HOOKS=tests.schemathesis_signing``).

The gateway is ``$FUZZ_WEBHOOK_SOURCE`` (the path's ``source`` is set to it) with the
secret ``$FUZZ_WEBHOOK_SECRET``. The signature is made by a ``requests`` auth, which sees
the body exactly as it is sent; each call gets a new ``webhook-id`` and the current time.
A body that is not UTF-8 cannot be signed (the scheme signs text): it goes unsigned.
"""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime
from typing import Any

import requests
import schemathesis
from standardwebhooks.webhooks import Webhook


class Signed(requests.auth.AuthBase):
    def __init__(self, secret: str) -> None:
        self.webhook = Webhook(secret)

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        body = request.body or b""
        try:
            text = body.decode() if isinstance(body, bytes) else body
        except UnicodeDecodeError:
            return request
        if not isinstance(text, str):  # a stream: not sent here
            return request
        msg_id = f"msg_{uuid.uuid4().hex}"
        at = datetime.now(UTC)
        request.headers["webhook-id"] = msg_id
        request.headers["webhook-timestamp"] = str(int(at.timestamp()))
        request.headers["webhook-signature"] = self.webhook.sign(msg_id, at, text)
        return request


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    case.path_parameters = {
        **(case.path_parameters or {}),
        "source": os.environ["FUZZ_WEBHOOK_SOURCE"],
    }
    kwargs["auth"] = Signed(os.environ["FUZZ_WEBHOOK_SECRET"])
