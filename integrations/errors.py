"""One error hierarchy for every external API.

Every failure of an outbound call ends up as an :class:`IntegrationError` with two facts the pipeline needs:

* ``retryable`` — is it worth trying again later (timeouts, connection errors, 5xx, 429)? Anything not known to be
  transient is permanent: closed by default, so a bug never loops forever.
* ``outcome_unknown`` — may the remote side have acted on the request even though we saw an error (timeout after
  the request was sent, connection reset, 5xx on a write)? The posting service then checks the remote system for
  our reference before it tries again, so a lost response never becomes a duplicate entry.
* ``unavailable`` — was the remote system unreachable or not answering (connection refused or reset, timeout, 408,
  5xx)? Not a verdict on the request: the posting service waits behind a per-tenant circuit breaker instead of
  spending the posting's attempt budget, so a long outage never parks work for a person.

Messages never contain credentials: clients build them from status codes and the remote system's own messages.
"""

from __future__ import annotations


class IntegrationError(Exception):
    """Base class. ``message`` is safe to show to an accountant and to log."""

    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        retryable: bool | None = None,
        outcome_unknown: bool = False,
        status_code: int | None = None,
        retry_after: float | None = None,
        response_body: str | None = None,
        unavailable: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        if retryable is not None:
            self.retryable = retryable
        self.outcome_unknown = outcome_unknown
        self.status_code = status_code
        self.retry_after = retry_after
        self.response_body = response_body
        self.unavailable = unavailable

    def __str__(self) -> str:
        return self.message


class RetryableError(IntegrationError):
    """Transient: timeouts, connection errors, 5xx, 429. Try again later with backoff."""

    retryable = True


class RateLimitedError(RetryableError):
    """HTTP 429. ``retry_after`` (seconds) says when the quota refreshes, when the server told us."""


class PermanentError(IntegrationError):
    """Will fail the same way again until a person changes something (data, mapping, credentials, X3 setup)."""

    retryable = False


class AuthenticationError(PermanentError):
    """401/403: credentials are wrong, expired or lack permission."""


class NotFoundError(PermanentError):
    """404: the requested object does not exist (e.g. a deleted order)."""


class BadResponseError(RetryableError):
    """The remote side answered with something we cannot parse (bad JSON, wrong shape).

    Retryable because it is usually a proxy error page or a half-written response; if it persists the posting
    runs out of attempts and stops at "needs attention" with this message.
    """


class ReauthorizationRequired(PermanentError):
    """The stored OAuth2 authorization is gone (refresh token expired or revoked): a person must reconnect.

    Postings wait in "needs re-authorization" rather than failing: reconnecting resumes them.
    """
