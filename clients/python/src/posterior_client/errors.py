"""Exceptions by gRPC status code, each carrying the server's message.

Every failure of a call raises a subclass of :class:`PosteriorError`:
``except posterior_client.NotFound`` reads as what happened, and
``err.code`` / ``err.message`` keep what the server said.
"""

from __future__ import annotations

from typing import Any

import grpc

__all__ = [
    "PosteriorError",
    "InvalidArgument",
    "NotFound",
    "AlreadyExists",
    "FailedPrecondition",
    "Unavailable",
    "ResourceExhausted",
    "Unauthenticated",
    "PermissionDenied",
    "DeadlineExceeded",
    "from_rpc_error",
]


class PosteriorError(Exception):
    """A call failed. ``code`` is the gRPC status code, ``message`` the
    server's explanation (it names the field and the rule for bad input),
    ``attempts`` how many times the call was sent (more than 1 after
    retries of a retryable code)."""

    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(self, message: str, code: grpc.StatusCode | None = None, attempts: int = 1):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.attempts = attempts

    def __str__(self) -> str:
        return f"{self.code.name}: {self.message}"


class InvalidArgument(PosteriorError):
    """The request is malformed; the message names the field and the rule."""

    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(PosteriorError):
    """No such experiment, study, arm or trial."""

    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(PosteriorError):
    """A different definition already exists under this name."""

    code = grpc.StatusCode.ALREADY_EXISTS


class FailedPrecondition(PosteriorError):
    """The state does not allow this now (a trial already observed, too many
    pending trials, an expired decision id...)."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class Unavailable(PosteriorError):
    """The server or its store cannot be reached (retried for safe calls)."""

    code = grpc.StatusCode.UNAVAILABLE


class ResourceExhausted(PosteriorError):
    """The server sheds load (too many requests in flight; retried for safe
    calls)."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Unauthenticated(PosteriorError):
    """No API key, or one the server does not know."""

    code = grpc.StatusCode.UNAUTHENTICATED


class PermissionDenied(PosteriorError):
    """The API key lacks the scope this call needs (decide, report, admin)."""

    code = grpc.StatusCode.PERMISSION_DENIED


class DeadlineExceeded(PosteriorError):
    """No answer within the client's ``timeout``."""

    code = grpc.StatusCode.DEADLINE_EXCEEDED


_BY_CODE: dict[grpc.StatusCode, type[PosteriorError]] = {
    cls.code: cls
    for cls in (
        InvalidArgument,
        NotFound,
        AlreadyExists,
        FailedPrecondition,
        Unavailable,
        ResourceExhausted,
        Unauthenticated,
        PermissionDenied,
        DeadlineExceeded,
    )
}


def from_rpc_error(e: grpc.RpcError, attempts: int = 1) -> PosteriorError:
    """The exception for a failed call (sync ``grpc.RpcError`` or
    ``grpc.aio.AioRpcError``; both are also ``grpc.Call``-like)."""
    call: Any = e
    code = call.code() if hasattr(call, "code") else grpc.StatusCode.UNKNOWN
    details = call.details() if hasattr(call, "details") else None
    message = details if details else str(e)
    cls = _BY_CODE.get(code, PosteriorError)
    return cls(message, code, attempts)
