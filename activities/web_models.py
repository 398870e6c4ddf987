"""The web's tables: storefront API keys, idempotency records of the HTTP API, payment
webhook deliveries, admin users and their login attempts (``starter.web``).

Registered on ``activities.models.Base.metadata`` whenever ``activities.models`` is
imported (its last line imports this module). Schema changes go through Alembic (migrations
0012, 0013); ``tests/test_read_model.py`` checks that the two agree.

Secrets are never stored: an API key is kept as the SHA-256 of the key (the key is 32
random bytes, so a fast hash is enough: nothing to brute-force), a password as an argon2
hash; both are shown once, when created.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Identity, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from activities.models import ID_LENGTH, Base

#: an API key's public prefix (``ck_<prefix>_<secret>``): how an admin tells keys apart
KEY_PREFIX_LENGTH = 16
#: hex SHA-256
DIGEST_LENGTH = 64
#: an admin's user name
USERNAME_LENGTH = 64
#: a client's idempotency key (``Idempotency-Key``) or a webhook's id (``webhook-id``)
CLIENT_KEY_LENGTH = 255


class ApiKeyRecord(Base):
    """A storefront's key for one shop (``cartkeeper keys create|list|revoke``)."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), Identity(start=1), primary_key=True
    )
    shop_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    #: what the admin called it ("storefront", "php-shop" ...)
    name: Mapped[str] = mapped_column(String(ID_LENGTH))
    prefix: Mapped[str] = mapped_column(String(KEY_PREFIX_LENGTH), unique=True)
    #: hex SHA-256 of the whole key
    digest: Mapped[str] = mapped_column(String(DIGEST_LENGTH), unique=True)
    created_at: Mapped[datetime]
    created_by: Mapped[str | None] = mapped_column(String(USERNAME_LENGTH))
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]

    __table_args__ = ({"sqlite_autoincrement": True},)


class IdempotencyRecord(Base):
    """One POST under an ``Idempotency-Key``: claimed before the request runs
    (``completed_at`` NULL), then the answer kept, so a repeat gets the same answer and a
    repeat with another body is refused (``request_digest``). An attempt that failed with
    a 5xx gives the key back: the record is deleted, or kept released (``released_at``)
    when the next attempt must send new update ids (``update_generation``)."""

    __tablename__ = "idempotency_keys"

    #: who sent it: ``key:<api key id>``, ``admin:<user>``
    scope: Mapped[str] = mapped_column(String(ID_LENGTH + 16), primary_key=True)
    key: Mapped[str] = mapped_column(String(CLIENT_KEY_LENGTH), primary_key=True)
    #: hex SHA-256 of method, path and body
    request_digest: Mapped[str] = mapped_column(String(DIGEST_LENGTH))
    status_code: Mapped[int | None] = mapped_column(Integer)
    #: the JSON answer, as sent
    response_body: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    completed_at: Mapped[datetime | None]
    #: when its last attempt failed with a 5xx and gave the key back (migration 0013)
    released_at: Mapped[datetime | None]
    #: the generation of the Temporal update ids the request's attempts send
    #: (``starter.web.idempotency.update_base``): 0, then one more after each attempt
    #: whose updates all failed for sure
    update_generation: Mapped[int] = mapped_column(Integer, server_default="0")

    __table_args__ = (Index(None, "created_at"),)


class WebhookDelivery(Base):
    """A payment webhook taken (Standard Webhooks ``webhook-id``): a replay of the same
    id is acknowledged without being applied again."""

    __tablename__ = "webhook_deliveries"

    #: the gateway the secret belongs to
    source: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    webhook_id: Mapped[str] = mapped_column(String(CLIENT_KEY_LENGTH), primary_key=True)
    shop_id: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    cart_id: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    received_at: Mapped[datetime]
    #: when the cart's workflow had it (NULL: not yet; a retry delivers it)
    delivered_at: Mapped[datetime | None]
    #: when a delivery under way took it (NULL: none is): another delivery of the same id
    #: waits for that one instead of signalling the cart again (``starter.web.webhooks``)
    claimed_at: Mapped[datetime | None]

    __table_args__ = (Index(None, "received_at"),)


class AdminUser(Base):
    """A person who signs in to the admin console (``cartkeeper users add|passwd|remove``)."""

    __tablename__ = "admin_users"

    username: Mapped[str] = mapped_column(String(USERNAME_LENGTH), primary_key=True)
    #: argon2 (``argon2-cffi``), with its parameters
    password_hash: Mapped[str] = mapped_column(String(255))
    #: ``admin`` (acts) or ``viewer`` (reads)
    role: Mapped[str] = mapped_column(String(16))
    #: grows when the password changes or the user is removed: older sessions end
    session_epoch: Mapped[int] = mapped_column(Integer, server_default="0")
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class LoginAttempt(Base):
    """A failed sign-in, counted per user name and per client address for the rate limit."""

    __tablename__ = "login_attempts"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), Identity(start=1), primary_key=True
    )
    username: Mapped[str] = mapped_column(String(USERNAME_LENGTH))
    address: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime]

    __table_args__ = (
        Index(None, "username", "at"),
        Index(None, "address", "at"),
        {"sqlite_autoincrement": True},
    )
