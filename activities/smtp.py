"""Sending one e-mail to an SMTP relay (aiosmtplib): plain, STARTTLS or implicit TLS, with
an optional login, all from the settings.

Every failure is a ``MailError`` with a code and whether trying again later may succeed:
a relay that refuses a recipient or the message for good (5xx) is ``smtp_refused`` and
permanent; one that is down, drops the connection, answers 4xx or does not answer in time
is ``smtp_unavailable`` / ``smtp_timeout`` and transient; a configuration that cannot work
(TLS or a login the relay does not offer, an unreadable CA file, a password to be sent in
clear to another host) is ``smtp_misconfigured`` and permanent. The caller (an activity)
decides on retries; nothing here retries.

The message is written with lines up to 998 characters (RFC 5322), so that a long
``List-Unsubscribe`` link is sent as it is, never folded or encoded.
"""

from __future__ import annotations

import copy
import email.policy
import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import getaddresses
from pathlib import Path

import aiosmtplib

from activities.settings import Settings


class MailError(Exception):
    """A message was not accepted by the relay."""

    def __init__(
        self, code: str, message: str, *, transient: bool, recipients_refused: bool = False
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.transient = transient
        #: the relay refused the recipients themselves (at RCPT), not the message
        self.recipients_refused = recipients_refused

    @property
    def bounced(self) -> bool:
        """The relay refused every recipient for good (5xx at RCPT): the address bounced."""
        return self.recipients_refused and not self.transient


@dataclass(frozen=True)
class SmtpConfig:
    host: str = "127.0.0.1"
    port: int = 1025
    security: str = "none"  # none | starttls | tls
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: Path | None = None
    timeout_seconds: float = 10.0

    @classmethod
    def from_settings(cls, settings: Settings) -> SmtpConfig:
        return cls(
            host=settings.smtp_host,
            port=settings.smtp_port,
            security=settings.smtp_security,
            username=settings.smtp_username,
            password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
            ca_file=settings.smtp_ca_file,
            timeout_seconds=settings.smtp_timeout_seconds,
        )

    def tls_context(self) -> ssl.SSLContext | None:
        if self.security == "none":
            return None
        return ssl.create_default_context(
            cafile=str(self.ca_file) if self.ca_file is not None else None
        )

    def describe(self) -> str:
        """Where mail goes, without the password."""
        login = f"{self.username}@" if self.username else ""
        return f"smtp://{login}{self.host}:{self.port} ({self.security})"


@dataclass(frozen=True)
class SentMessage:
    """What the relay answered for an accepted message."""

    message_id: str | None
    recipients: tuple[str, ...]
    response: str
    #: recipients the relay refused while it accepted the others
    refused: tuple[str, ...] = ()


LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
#: the relay's answers that mean "this configuration cannot work" (not worth a retry)
_UNSUPPORTED = ("not supported", "no suitable authentication method")


def misconfigured(message: str) -> MailError:
    return MailError("smtp_misconfigured", message, transient=False)


async def send_message(config: SmtpConfig, message: EmailMessage) -> SentMessage:
    """Hand ``message`` to the relay; ``MailError`` when it is not accepted."""
    if config.username and config.security == "none" and config.host not in LOCAL_HOSTS:
        raise misconfigured(
            f"{config.describe()}: the login would cross the network in clear;"
            " use CARTKEEPER_SMTP_SECURITY=starttls or tls"
        )
    sender = _addresses(message, ("Sender", "From"))[:1]
    recipients = _addresses(message, ("To", "Cc", "Bcc"))
    if not sender or not recipients:
        raise MailError(
            "smtp_refused", "the message has no sender or no recipient", transient=False
        )
    outgoing = copy.copy(message)
    del outgoing["Bcc"]
    utf8 = not all(address.isascii() for address in (*sender, *recipients))
    policy = (email.policy.SMTPUTF8 if utf8 else email.policy.SMTP).clone(max_line_length=998)
    data = outgoing.as_bytes(policy=policy)
    try:
        context = config.tls_context()
    except (OSError, ssl.SSLError) as error:
        raise misconfigured(f"the CA file {config.ca_file}: {error}") from None
    client = aiosmtplib.SMTP(
        hostname=config.host,
        port=config.port,
        timeout=config.timeout_seconds,
        use_tls=config.security == "tls",
        start_tls=config.security == "starttls",
        tls_context=context,
        username=config.username,
        password=config.password,
    )
    try:
        try:
            await client.connect()
            refused, response = await client.sendmail(
                sender[0], recipients, data, mail_options=["SMTPUTF8"] if utf8 else []
            )
        finally:
            # No QUIT, whatever happened: after a failure or a cancellation it would wait
            # for a relay that may not answer, and after the relay accepted the message
            # it would only add a round trip in which a cancellation could turn an
            # accepted message into a failure (and a resend).
            client.close()
    except aiosmtplib.SMTPRecipientsRefused as error:
        raise _refused(error.recipients) from None
    except aiosmtplib.SMTPTimeoutError as error:
        raise MailError(
            "smtp_timeout",
            f"{config.describe()} did not answer within {config.timeout_seconds:g}s: {error}",
            transient=True,
        ) from None
    except aiosmtplib.SMTPAuthenticationError as error:
        raise _answered(
            error.code, f"{config.describe()} refused the login:", error.message
        ) from None
    except aiosmtplib.SMTPNotSupported as error:
        raise misconfigured(f"{config.describe()}: {error}") from None
    except aiosmtplib.SMTPResponseException as error:
        raise _answered(error.code, f"{config.describe()} answered", error.message) from None
    except (aiosmtplib.SMTPException, OSError) as error:
        if any(words in str(error).lower() for words in _UNSUPPORTED):
            raise misconfigured(f"{config.describe()}: {error}") from None
        # Connection refused or dropped, TLS handshake failed, ...
        raise MailError(
            "smtp_unavailable",
            f"{config.describe()}: {type(error).__name__}: {error}",
            transient=True,
        ) from None
    # Some recipients may have been refused while others were accepted: it went out.
    return SentMessage(
        message_id=message.get("Message-ID"),
        recipients=tuple(address for address in recipients if address not in refused),
        response=response,
        refused=tuple(sorted(refused)),
    )


def _addresses(message: EmailMessage, headers: tuple[str, ...]) -> list[str]:
    fields = [str(value) for key in headers for value in message.get_all(key, [])]
    return [address for _name, address in getaddresses(fields) if address]


def _answered(code: int, what: str, message: str = "") -> MailError:
    """A relay's refusal: 5xx for good (``smtp_refused``), anything else for now."""
    permanent = 500 <= code < 600
    return MailError(
        "smtp_refused" if permanent else "smtp_unavailable",
        f"{what} {code} {message}".rstrip(),
        transient=not permanent,
    )


def _refused(recipients: list[aiosmtplib.SMTPRecipientRefused]) -> MailError:
    codes = sorted({refusal.code for refusal in recipients})
    permanent = all(500 <= code < 600 for code in codes)
    detail = "; ".join(
        f"{refusal.recipient}: {refusal.code} {refusal.message}" for refusal in recipients
    )
    return MailError(
        "smtp_refused" if permanent else "smtp_unavailable",
        f"every recipient was refused ({detail})",
        transient=not permanent,
        recipients_refused=True,
    )
