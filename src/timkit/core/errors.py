"""The timkit exception hierarchy.

Every error timkit raises on purpose is a :class:`TimkitError`; each protocol edge
(Matrix JSON, FHIR ``OperationOutcome``, OAuth, CLI) renders it in exactly one place::

    TimkitError                 status + errcode + message (+ requirement id)
    ├── ConfigError             invalid configuration; names the offending key path
    └── UpstreamError           a peer we depend on failed (rendered as 502)
        └── TemporaryUpstreamError   worth retrying with back-off
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any


class Codes(StrEnum):
    """Matrix-style error codes used across timkit (``errcode`` in Matrix JSON).

    Every ``M_…`` code timkit sends or compares is a member here; no other module spells one
    as a string literal (``tests/core/test_errors.py`` enforces it).
    """

    UNKNOWN = "M_UNKNOWN"
    FORBIDDEN = "M_FORBIDDEN"
    NOT_FOUND = "M_NOT_FOUND"
    BAD_JSON = "M_BAD_JSON"
    INVALID_PARAM = "M_INVALID_PARAM"
    MISSING_TOKEN = "M_MISSING_TOKEN"  # noqa: S105 - an error code, not a secret
    UNKNOWN_TOKEN = "M_UNKNOWN_TOKEN"  # noqa: S105 - an error code, not a secret
    USER_IN_USE = "M_USER_IN_USE"
    USER_DEACTIVATED = "M_USER_DEACTIVATED"
    LIMIT_EXCEEDED = "M_LIMIT_EXCEEDED"
    UNRECOGNIZED = "M_UNRECOGNIZED"
    NOT_JSON = "M_NOT_JSON"
    TOO_LARGE = "M_TOO_LARGE"
    UNAUTHORIZED = "M_UNAUTHORIZED"
    CONFLICT = "M_CONFLICT"
    RESOURCE_LIMIT_EXCEEDED = "M_RESOURCE_LIMIT_EXCEEDED"
    # the Registrierungs-Dienst's own codes
    UNAVAILABLE = "M_UNAVAILABLE"
    EXPIRED = "M_EXPIRED"
    ORG_HAS_ADMIN = "M_ORG_HAS_ADMIN"
    IDP_REFUSED = "M_IDP_REFUSED"
    WEAK_PASSWORD = "M_WEAK_PASSWORD"  # noqa: S105 - an error code, not a secret
    INVALID_USERNAME = "M_INVALID_USERNAME"
    ALREADY_ACTIVE = "M_ALREADY_ACTIVE"
    NOT_ACTIVE = "M_NOT_ACTIVE"
    WEBAUTHN = "M_WEBAUTHN"
    WEBAUTHN_REQUIRED = "M_WEBAUTHN_REQUIRED"
    CONFIG = "TIMKIT_CONFIG"
    UPSTREAM = "TIMKIT_UPSTREAM"


class IssueType(StrEnum):
    """FHIR ``IssueType`` codes used as ``errcode`` of errors raised behind a FHIR edge."""

    INVALID = "invalid"
    STRUCTURE = "structure"
    REQUIRED = "required"
    VALUE = "value"
    INVARIANT = "invariant"
    NOT_SUPPORTED = "not-supported"
    NOT_FOUND = "not-found"
    DELETED = "deleted"
    CONFLICT = "conflict"
    DUPLICATE = "duplicate"
    FORBIDDEN = "forbidden"
    BUSINESS_RULE = "business-rule"
    PROCESSING = "processing"
    TOO_COSTLY = "too-costly"
    EXCEPTION = "exception"


_ISSUE_TYPES = frozenset(IssueType)


class TimkitError(Exception):
    """An error with an HTTP status, an error code and, where a rule caused it, its id.

    Args:
        status: HTTP status code the edge responds with.
        errcode: machine-readable code (:class:`Codes`, or :class:`IssueType` behind FHIR).
        message: human-readable explanation naming what was wrong.
        requirement: gematik/MedMij requirement id the rejection rests on, e.g. ``ML-123485``.
        extra: additional fields for the rendered error body.
        headers: response headers the error must carry wherever it is rendered (``Allow``
            on a 405, ``WWW-Authenticate`` on a 401, ``Retry-After``); ``core.web.guard``
            adds them to what the component's renderer returns.
    """

    def __init__(
        self,
        status: int,
        errcode: str,
        message: str,
        *,
        requirement: str | None = None,
        extra: dict[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.status = status
        self.errcode = errcode
        self.message = message
        self.requirement = requirement
        self.extra = dict(extra or {})
        self.headers = dict(headers or {})
        super().__init__(self.describe())

    def describe(self) -> str:
        """The message, with `` - see <requirement>`` appended when a rule caused it."""
        if self.requirement:
            return f"{self.message} - see {self.requirement}"
        return self.message

    def to_matrix(self) -> dict[str, Any]:
        """Render as a Matrix error body (``{"errcode", "error", ...}``)."""
        return {"errcode": self.errcode, "error": self.describe(), **self.extra}

    def to_operation_outcome(self) -> dict[str, Any]:
        """Render as a FHIR R4 ``OperationOutcome`` with one error issue.

        ``errcode`` becomes ``issue.code`` when it is a FHIR issue type (see :class:`IssueType`),
        else ``processing``; an ``expression`` list in ``extra`` names the offending elements.
        """
        code = self.errcode if self.errcode in _ISSUE_TYPES else IssueType.PROCESSING
        issue: dict[str, Any] = {
            "severity": "fatal" if self.status >= 500 else "error",
            "code": code,
            "diagnostics": self.describe(),
        }
        expression = self.extra.get("expression")
        if expression:
            issue["expression"] = list(expression)
        return {"resourceType": "OperationOutcome", "issue": [issue]}

    def to_oauth(self) -> dict[str, Any]:
        """Render as an OAuth 2.0 error body (RFC 6749 §5.2, RFC 6750 §3).

        ``errcode`` is used when it is an OAuth code (lower-case ``snake_case``), else one is
        derived from the status: 400 ``invalid_request``, 401 ``invalid_token``, 403
        ``insufficient_scope``, 429 ``slow_down``, otherwise ``server_error``.
        """
        code = self.errcode
        if not code.islower() or not code.replace("_", "").isalpha():
            code = _OAUTH_BY_STATUS.get(self.status, "server_error")
        return {"error": code, "error_description": self.describe(), **self.extra}


_OAUTH_BY_STATUS = {
    400: "invalid_request",
    401: "invalid_token",
    403: "insufficient_scope",
    404: "invalid_request",
    429: "slow_down",
}


class ConfigError(TimkitError):
    """Invalid configuration. ``path`` is the dotted key path, e.g. ``services.0.port``."""

    def __init__(self, message: str, *, path: str = "", source: str = "") -> None:
        self.path = path
        self.source = source
        where = f"{source}: " if source else ""
        key = f"{path}: " if path else ""
        super().__init__(500, Codes.CONFIG, f"{where}{key}{message}")


class UpstreamError(TimkitError):
    """A service we call failed permanently; rendered as 502 Bad Gateway."""

    def __init__(self, message: str, *, requirement: str | None = None) -> None:
        super().__init__(502, Codes.UPSTREAM, message, requirement=requirement)


class TemporaryUpstreamError(UpstreamError):
    """A service we call failed in a way that is worth retrying with back-off."""
