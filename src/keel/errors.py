"""Everything that can go wrong in keel, as one tree a caller can catch at the right depth.

    KeelError                         500 server_error
    ├── ConfigError                   500 (raised at load time, never per request)
    ├── RequestError                  400 invalid_request_error
    │   ├── InvalidRequest            400
    │   ├── PayloadTooLarge           413
    │   ├── InputRejected             400 (a stage blocked the input; carries the reason code)
    │   └── UnknownFeature            404 model_not_found
    ├── AuthenticationError           401 invalid_api_key
    ├── PermissionDenied              403 permission_denied
    ├── RateLimited                   429 rate_limit_exceeded
    │   └── BudgetExceeded            429 budget_exceeded
    ├── OutputRejected                502 invalid_response_error (validation refused the answer)
    ├── ProviderUnavailable           503 (a provider cannot be used here, e.g. missing extra)
    ├── LedgerWriteError              500 (a ledger batch could not be written; nothing of it was)
    ├── CallCancelled                 499 (the caller went away before the answer was complete)
    ├── StateUnavailable              503 state_unavailable (the shared-state backend, e.g. Redis, is down)
    └── UpstreamError                 502 upstream_error (carries status, body, attempts)
        ├── UpstreamTimeout           504
        ├── UpstreamConnectionError   502
        ├── UpstreamProtocolError     502 (the upstream answered something that is not the protocol)
        ├── UpstreamStatusError       the upstream's own 4xx/5xx, mapped by ``http_status``
        └── CircuitOpen               503 circuit_open (a breaker refused the call: fail fast, fall back)

Each class knows its HTTP status and OpenAI error ``type``/``code``, so the gateway maps
them in one place (``server/errors.py``) and the CLI prints ``str(exc)`` as one line.
"""

from __future__ import annotations

from typing import Any


class KeelError(Exception):
    """Base of every error keel raises on purpose."""

    status: int = 500
    type: str = "server_error"
    code: str | None = None

    def __init__(self, message: str, *, code: str | None = None, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.param = param

    def to_openai(self) -> dict[str, Any]:
        """The error as OpenAI's error JSON body."""
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


class ConfigError(KeelError):
    """The configuration (keel.yaml, a prompt file) is invalid; the message names file and key."""

    code = "config_error"


class RequestError(KeelError):
    """The caller sent something keel will not process."""

    status = 400
    type = "invalid_request_error"


class InvalidRequest(RequestError):
    """Malformed body: not JSON, not UTF-8, or missing/ill-typed fields."""

    code = "invalid_request"


class PayloadTooLarge(RequestError):
    """The body or the input exceeds a configured size or token limit."""

    status = 413
    code = "payload_too_large"


class InputRejected(RequestError):
    """An Input-layer stage blocked the call; ``code`` is the stage's reason code."""

    code = "input_rejected"


class UnknownFeature(RequestError):
    """The ``model`` field or ``X-Keel-Feature`` header names no configured feature."""

    status = 404
    code = "model_not_found"


class AuthenticationError(KeelError):
    """Missing or wrong API key."""

    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class PermissionDenied(KeelError):
    """The key is valid but may not reach this feature, model or endpoint."""

    status = 403
    type = "permission_error"
    code = "permission_denied"


class RateLimited(KeelError):
    """A rate limit was hit; ``retry_after`` is in seconds."""

    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"

    def __init__(self, message: str, *, retry_after: float | None = None, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after


class BudgetExceeded(RateLimited):
    """Spending this call would exceed a budget."""

    code = "budget_exceeded"


class OutputRejected(KeelError):
    """The Validation layer refused the model's answer and no fallback answer was configured."""

    status = 502  # the upstream answered, but not acceptably: a bad-gateway condition, retryable
    type = "invalid_response_error"
    code = "output_rejected"


class ProviderUnavailable(KeelError):
    """A configured provider cannot run here (e.g. the local model's extra is not installed)."""

    status = 503
    type = "server_error"
    code = "provider_unavailable"


class CallCancelled(KeelError):
    """The caller disconnected or cancelled before the answer was complete (recorded, never sent)."""

    status = 499
    type = "client_closed_request"
    code = "cancelled"


class StateUnavailable(KeelError):
    """The shared-state backend (Redis) cannot be reached; limits and budgets refuse rather than guess."""

    status = 503
    type = "server_error"
    code = "state_unavailable"


class LedgerWriteError(KeelError):
    """A ledger batch could not be written and nothing of it was; ``retryable``: trying again may help."""

    code = "ledger_write_failed"

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable  # False: a row in the batch is bad data and will never be accepted


class UpstreamError(KeelError):
    """The model provider failed; carries what it said."""

    status = 502
    type = "upstream_error"
    code = "upstream_error"

    def __init__(
        self,
        message: str,
        *,
        upstream_status: int | None = None,
        body: str | None = None,
        headers: dict[str, str] | None = None,
        attempts: int = 1,
        code: str | None = None,
    ) -> None:
        super().__init__(message, code=code)
        self.upstream_status = upstream_status
        self.body = body
        self.headers = headers or {}
        self.attempts = attempts

    @property
    def retryable(self) -> bool:
        """True when trying again may succeed (timeouts, connection errors, 429 and 5xx)."""
        return True


class UpstreamTimeout(UpstreamError):
    """The upstream did not answer within the configured timeout."""

    status = 504
    code = "upstream_timeout"


class UpstreamConnectionError(UpstreamError):
    """The upstream could not be reached."""

    code = "upstream_unreachable"


class UpstreamProtocolError(UpstreamError):
    """The upstream answered with something that is not valid OpenAI protocol."""

    code = "upstream_malformed"


class UpstreamStatusError(UpstreamError):
    """The upstream answered with an HTTP error status."""

    @property
    def http_status(self) -> int:
        """The status the gateway returns: the caller's mistakes (400, 404, 413, 422, 429...) as the
        upstream said; keel's own (a rejected upstream key: 401, 403, 407) and 5xx as 502."""
        s = self.upstream_status or 502
        return s if 400 <= s < 500 and s not in (401, 403, 407) else 502

    @property
    def retryable(self) -> bool:
        s = self.upstream_status or 500
        return s == 429 or s == 408 or s >= 500


class CircuitOpen(UpstreamError):
    """A circuit breaker refused the call without asking the upstream (it failed too often lately).

    Not worth retrying on the same deployment (``retryable`` is False), but a reason to pick another
    deployment or fall back to the next model.
    """

    status = 503
    code = "circuit_open"

    @property
    def retryable(self) -> bool:
        return False


def http_status(exc: KeelError) -> int:
    """The HTTP status the gateway answers for ``exc``."""
    if isinstance(exc, UpstreamStatusError):
        return exc.http_status
    return exc.status
