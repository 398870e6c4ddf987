"""Signed links in customer e-mail (itsdangerous): a recovery link that brings an
abandoned cart back and expires, and an unsubscribe link that works for a long time (mail
providers and customers click it months later).

A token carries ids (shop, cart, reminder), or for unsubscribe the shop and the address
itself (readable in the link: it names whom it unsubscribes; signed, not encrypted), is
signed with the deployment's secret key and a purpose (a recovery token is never accepted
as an unsubscribe token, nor the other way round), and is URL-safe. A link that was changed,
signed with another key, or (recovery) is older than its lifetime is refused with a code:
``link_invalid`` or ``link_expired``.

The key: ``CARTKEEPER_SECRET_KEY`` (at least 32 characters; every worker and web process of
a deployment must share it). Unset, one is generated once and kept in
``$CARTKEEPER_DATA_DIR/secret_key`` (mode 0600): right for one machine and for ``cartkeeper
dev``, wrong for several hosts (their links would not verify on each other).
"""

from __future__ import annotations

import os
import secrets
import tempfile
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from activities.settings import Settings

RECOVERY = "cartkeeper.recovery"
UNSUBSCRIBE = "cartkeeper.unsubscribe"
#: how long a recovery link works by default
RECOVERY_LIFETIME = timedelta(days=30)
#: an unsubscribe link must keep working (RFC 8058 senders honour it for months)
UNSUBSCRIBE_LIFETIME = timedelta(days=3650)


class LinkRefused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True)
class RecoveryClaim:
    shop_id: str
    cart_id: str
    reminder: str


@dataclass(frozen=True)
class UnsubscribeClaim:
    shop_id: str
    email: str


def secret_key(settings: Settings) -> str:
    """The deployment's key: the setting, else the one kept in ``data_dir`` (made once)."""
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value()
    path = settings.data_dir / "secret_key"
    try:
        key = path.read_text().strip()
        if len(key) >= 32:
            return key
    except FileNotFoundError:
        pass
    return _make_key(path)


def _make_key(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    descriptor, name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # 0600
    temporary = Path(name)
    try:
        with os.fdopen(descriptor, "w") as handle:
            handle.write(key)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temporary, path)  # the first process to get here wins
        except FileExistsError:
            key = path.read_text().strip()
            if len(key) < 32:
                raise ValueError(
                    f"{path} holds no usable key (under 32 characters): delete it, or set"
                    " CARTKEEPER_SECRET_KEY"
                ) from None
    finally:
        temporary.unlink(missing_ok=True)
    return key


class Links:
    def __init__(self, key: str) -> None:
        if len(key) < 32:
            raise ValueError("the secret key must have at least 32 characters")
        self._recovery = URLSafeTimedSerializer(key, salt=RECOVERY)
        self._unsubscribe = URLSafeTimedSerializer(key, salt=UNSUBSCRIBE)

    @classmethod
    def from_settings(cls, settings: Settings) -> Links:
        return cls(secret_key(settings))

    # ------------------------------------------------------------------ recovery

    def recovery_token(self, claim: RecoveryClaim) -> str:
        return str(self._recovery.dumps([claim.shop_id, claim.cart_id, claim.reminder]))

    def read_recovery(self, token: str, lifetime: timedelta = RECOVERY_LIFETIME) -> RecoveryClaim:
        values = self._load(self._recovery, token, lifetime)
        if not (isinstance(values, list) and len(values) == 3):
            raise LinkRefused("link_invalid", "not a recovery link")
        shop_id, cart_id, reminder = (str(value) for value in values)
        return RecoveryClaim(shop_id, cart_id, reminder)

    # ------------------------------------------------------------------ unsubscribe

    def unsubscribe_token(self, claim: UnsubscribeClaim) -> str:
        return str(self._unsubscribe.dumps([claim.shop_id, claim.email.strip().lower()]))

    def read_unsubscribe(self, token: str) -> UnsubscribeClaim:
        values = self._load(self._unsubscribe, token, UNSUBSCRIBE_LIFETIME)
        if not (isinstance(values, list) and len(values) == 2):
            raise LinkRefused("link_invalid", "not an unsubscribe link")
        shop_id, email = (str(value) for value in values)
        return UnsubscribeClaim(shop_id, email)

    @staticmethod
    def _load(serializer: URLSafeTimedSerializer, token: str, lifetime: timedelta) -> object:
        try:
            return serializer.loads(token, max_age=int(lifetime.total_seconds()))
        except SignatureExpired:
            raise LinkRefused("link_expired", "the link has expired") from None
        except BadSignature:
            raise LinkRefused("link_invalid", "the link is not valid") from None
