"""matrix-nio's error responses as :class:`TimkitError` (nio types never leave the SDK)."""

from __future__ import annotations

import nio

from timkit.core.errors import Codes, TimkitError


def nio_error(response: object, action: str) -> TimkitError:
    """A TimkitError for a nio error response (its status and errcode kept)."""
    status = getattr(response, "transport_response", None)
    code = int(getattr(status, "status", 0) or 0) or 502
    errcode = getattr(response, "status_code", None) or Codes.UNKNOWN
    message = getattr(response, "message", None) or str(response)
    return TimkitError(code, str(errcode), f"{action}: {message}")


def checked(response: object, action: str) -> None:
    if isinstance(response, nio.ErrorResponse):
        raise nio_error(response, action)
