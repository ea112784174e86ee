"""The SMTP provider (aiosmtplib): connections reused within a delivery batch, phases
classified.

Connections: a `connections()` scope (one delivery drain, or one `send_many`) keeps the
connections it opens (at most `max_connections` at once) and gives each one message after
another: connect, TLS and AUTH are paid once per connection, not per message. A connection
carries at most `MESSAGES_PER_CONNECTION` messages, is reset (RSET) after a refused envelope,
dropped after any connection-level error or an unknown DATA outcome, and closed (QUIT) when
the scope ends. A
reused connection that turns out dead before DATA (the server timed it out, or answered 421
"closing") is replaced by a fresh one for the same message, once: nothing was sent on it.

Phases: connect (with the TLS handshake when `security` is `tls`), STARTTLS (only when
`security` is `starttls`: required, never opportunistic), AUTH (when a username is set), MAIL
FROM, RCPT TO, DATA.

Before DATA: a 4xx reply, a refused connection or a timeout is retryable; a 5xx reply is
permanent. During DATA, a 4xx/5xx reply classifies the same way, but a connection lost or a
timeout there is `unknown`: the server may have accepted the message, and SMTP gives no way
to ask, so it is never resent (DESIGN.md section 4).

TLS and AUTH follow the same rule, on purpose:
- A certificate that fails verification (unknown CA, expired, wrong host name), a failed TLS
  handshake, or a server that does not offer STARTTLS when `starttls` is required is a
  connection-level problem with no SMTP reply: retryable. It is nearly always configuration
  (`ca_file`, the server's certificate) that an operator fixes within the retry window; failing
  every queued message at the first attempt would be the costlier mistake. Nothing is ever sent
  in plaintext or to an unverified server instead. The reason names the cause (`certificate
  verification failed: ...`, `STARTTLS ... not supported`).
- AUTH rejected (535, or any 5xx) is a 5xx reply: permanent, like any other, although it hits
  every message alike: the server has said the credentials are wrong, and retrying with the
  same ones cannot succeed. A 4xx AUTH reply (454 temporary failure) is retryable. A server
  that does not advertise AUTH when a username is set is a connection-level problem:
  retryable (e.g. AUTH offered only after STARTTLS while `security` is `none`).
"""

from __future__ import annotations

import asyncio
import email.policy
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, parseaddr
from typing import Any

import aiosmtplib

from app.channels.providers.base import (
    OutboundMessage,
    PermanentError,
    Provider,
    RetryableError,
    SendError,
    SendResult,
    UnknownOutcomeError,
)
from app.config import SmtpSettings
from app.core.clock import utcnow

# Messages one connection carries before it is closed and replaced: servers commonly cap
# messages per session (often at 100) and answer 421 past it.
MESSAGES_PER_CONNECTION = 100
# A 421 reply: the server is closing the connection (a per-session cap, shutting down).
_CLOSING = 421

# Long enough for a List-Unsubscribe URL on one line (RFC 5322's hard limit is 998).
_POLICY = email.policy.SMTP.clone(max_line_length=998)


def _domain(address: str) -> str:
    return parseaddr(address)[1].rpartition("@")[2] or "herald.localhost"


def sender_of(content: dict[str, Any], default_from: str) -> str:
    """`from` as given, or the template's `from_email` (+ `from_name`), or the default."""
    if content.get("from"):
        return str(content["from"])
    if content.get("from_email"):
        return formataddr((str(content.get("from_name") or ""), str(content["from_email"])))
    return default_from


def build_email(message: OutboundMessage, default_from: str) -> EmailMessage:
    """The MIME message: multipart/alternative text + html, with the RFC 8058 headers."""
    content = message.content
    sender = sender_of(content, default_from)
    text, html = content.get("text"), content.get("html")
    if not message.recipient or not parseaddr(message.recipient)[1]:
        raise PermanentError("the message has no valid recipient address")
    if not text and not html:
        raise PermanentError("the email has neither a text nor an html part")
    mime = EmailMessage(policy=_POLICY)
    try:
        mime["From"] = sender
        mime["To"] = message.recipient
        mime["Subject"] = str(content.get("subject") or "")
        mime["Date"] = format_datetime(utcnow())
        mime["Message-ID"] = f"<{message.id}@{_domain(sender)}>"
        if content.get("reply_to"):
            mime["Reply-To"] = str(content["reply_to"])
        mime["List-Unsubscribe"] = f"<{message.unsubscribe_url}>"
        mime["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        if text:
            mime.set_content(str(text))
            if html:
                mime.add_alternative(str(html), subtype="html")
        else:
            mime.set_content(str(html), subtype="html")
    except (ValueError, TypeError) as error:  # header injection, malformed addresses
        raise PermanentError(f"the email cannot be built: {error}"[:500]) from error
    return mime


def _reply_error(error: aiosmtplib.SMTPResponseException, phase: str) -> SendError:
    """4xx replies are transient by definition (RFC 5321); anything else is final."""
    reason = f"SMTP {error.code} at {phase}: {error.message}"[:500]
    if 400 <= error.code < 500:
        return RetryableError(reason)
    return PermanentError(reason)


def _certificate_error(error: BaseException) -> ssl.SSLCertVerificationError | None:
    """The verification failure behind `error`: raised as is by STARTTLS, wrapped in
    `SMTPConnectError` by an implicit-TLS connect."""
    seen: BaseException | None = error
    for _ in range(5):
        if seen is None:
            break
        if isinstance(seen, ssl.SSLCertVerificationError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def tls_context(settings: SmtpSettings) -> ssl.SSLContext:
    """The client context for STARTTLS and implicit TLS: the system's CAs, or only those of
    `ca_file`; host name and certificate checked unless `verify_certificate` is off."""
    context = ssl.create_default_context(cafile=settings.ca_file)
    if not settings.verify_certificate:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class _Connection:
    """A client with the number of messages it has carried (its envelope is clean between
    messages)."""

    def __init__(self, client: aiosmtplib.SMTP) -> None:
        self.client = client
        self.carried = 0


class _Stale(Exception):
    """A reused connection failed before any byte of the message was sent."""


class SmtpProvider(Provider):
    name = "smtp"

    def __init__(self, settings: SmtpSettings, default_from: str) -> None:
        self.settings = settings
        self.default_from = default_from
        self.concurrency = settings.max_connections  # one connection per send in flight
        self._tls_context: ssl.SSLContext | None = None
        self._idle: list[_Connection] | None = None  # set while `send_many` runs
        self._slots: asyncio.Semaphore | None = None  # at most `max_connections` in use

    def _tls(self) -> ssl.SSLContext | None:
        """Built once per provider (per delivery call), on the first send that needs it."""
        if self.settings.security == "none":
            return None
        if self._tls_context is None:
            try:
                self._tls_context = tls_context(self.settings)
            except (OSError, ValueError) as error:  # ca_file gone or changed since start
                raise RetryableError(
                    f"TLS setup: cannot load ca_file {self.settings.ca_file!r}: {error}"[:500]
                ) from error
        return self._tls_context

    def _client(self) -> aiosmtplib.SMTP:
        settings = self.settings
        return aiosmtplib.SMTP(
            hostname=settings.host,
            port=settings.port,
            local_hostname=settings.helo_name,
            timeout=settings.timeout_seconds,
            use_tls=settings.security == "tls",
            # STARTTLS and AUTH are explicit steps of `_open` (their own phases); `None` here
            # would upgrade opportunistically.
            start_tls=False,
            tls_context=self._tls(),
        )

    @asynccontextmanager
    async def connections(self) -> AsyncIterator[None]:
        """Connections opened within this scope are kept and reused by its later sends (at
        most `max_connections` in use at once); all QUIT when it ends."""
        self._idle, self._slots = [], asyncio.Semaphore(self.settings.max_connections)
        try:
            yield
        finally:
            idle, self._idle, self._slots = self._idle, None, None
            await asyncio.gather(*(_quit(connection.client) for connection in idle))

    async def send(self, message: OutboundMessage) -> SendResult:
        mime = build_email(message, self.default_from)
        sender = parseaddr(str(mime["From"]))[1]
        assert message.recipient is not None
        recipient = parseaddr(message.recipient)[1]
        slots = self._slots or asyncio.Semaphore(1)
        async with slots, self._connection(sender, recipient) as connection:
            try:
                await connection.client.data(mime.as_bytes())
            except aiosmtplib.SMTPResponseException as error:
                raise _reply_error(error, "DATA") from error
            except (aiosmtplib.SMTPException, OSError, TimeoutError) as error:
                raise UnknownOutcomeError(
                    f"connection lost during DATA ({type(error).__name__}): "
                    "the server may have accepted the message"
                ) from error
        return SendResult(provider_message_id=str(mime["Message-ID"]))

    @asynccontextmanager
    async def _connection(self, sender: str, recipient: str) -> AsyncIterator[_Connection]:
        """A connection with this message's envelope accepted (MAIL FROM, RCPT TO), ready
        for DATA: an idle one of the batch, or a new one. Back to the idle ones afterwards
        when it is still in a known state, closed otherwise."""
        connection = self._idle.pop() if self._idle else None
        if connection is not None:
            try:
                await self._envelope(connection, sender, recipient, reused=True)
            except _Stale:
                _drop(connection.client)
                connection = None
        if connection is None:
            connection = _Connection(self._client())
            await self._open(connection)
            await self._envelope(connection, sender, recipient, reused=False)
        connection.carried += 1
        reusable = False
        try:
            yield connection
            reusable = True
        except (PermanentError, RetryableError):  # a reply to DATA: the transaction is over
            reusable = True
            raise
        finally:
            await self._release(connection, reusable)

    async def _release(self, connection: _Connection, reusable: bool) -> None:
        """Back to the batch's idle connections, or QUIT at the cap or outside a batch;
        closed at once when its state is unknown."""
        client = connection.client
        if not reusable or not client.is_connected:
            _drop(client)
        elif self._idle is not None and connection.carried < MESSAGES_PER_CONNECTION:
            self._idle.append(connection)
        else:
            await _quit(client)

    async def _open(self, connection: _Connection) -> None:
        settings = self.settings
        client = connection.client
        phase = "connect"
        try:
            await client.connect()
            if settings.security == "starttls":
                phase = "STARTTLS"
                await client.starttls()
            if settings.username is not None:
                phase = "AUTH"
                password = settings.password.get_secret_value() if settings.password else ""
                await client.login(settings.username, password)
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as error:
            _drop(client)
            raise _classified(error, phase) from error

    async def _envelope(
        self, connection: _Connection, sender: str, recipient: str, *, reused: bool
    ) -> None:
        """MAIL FROM + RCPT TO. A refused envelope is RSET so the connection can carry the
        next message; on a reused connection, a dead socket or a 421 is `_Stale`."""
        client = connection.client
        phase = "MAIL FROM"
        try:
            await client.mail(sender)
            phase = "RCPT TO"
            await client.rcpt(recipient)
        except aiosmtplib.SMTPResponseException as error:
            if reused and error.code == _CLOSING:
                raise _Stale from error
            if error.code != _CLOSING and await _reset(client):
                await self._release(connection, reusable=True)
            else:
                _drop(client)
            raise _reply_error(error, phase) from error
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as error:
            if reused:  # nothing of this message was sent: a fresh connection may take it
                raise _Stale from error
            _drop(client)
            raise _classified(error, phase) from error


def _classified(error: BaseException, phase: str) -> SendError:
    """The error of a phase before DATA: a reply by its code, anything else retryable, with
    a certificate failure named as such."""
    if isinstance(error, aiosmtplib.SMTPResponseException):
        return _reply_error(error, phase)
    certificate = _certificate_error(error)
    if certificate is not None:
        return RetryableError(
            f"{phase}: TLS certificate verification failed: "
            f"{certificate.verify_message or certificate}"[:500]
        )
    return RetryableError(f"{phase}: {type(error).__name__}: {error}"[:500])


async def _reset(client: aiosmtplib.SMTP) -> bool:
    """RSET after a refused envelope; whether the connection is usable again."""
    try:
        await client.rset()
    except (aiosmtplib.SMTPException, OSError, TimeoutError):
        return False
    return True


def _drop(client: aiosmtplib.SMTP) -> None:
    if client.is_connected:
        client.close()


async def _quit(client: aiosmtplib.SMTP) -> None:
    if client.is_connected:
        try:
            await client.quit()
        except (aiosmtplib.SMTPException, OSError, TimeoutError):
            client.close()
