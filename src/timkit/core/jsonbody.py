"""One parser for JSON request bodies, telling apart why a body cannot be used.

Every component reads JSON bodies through :func:`read_json` (or :func:`parse_json` for bytes
it already holds) and gets a :class:`JsonBodyError` naming exactly what was wrong:

=============== ====================================================================
problem          message (``what`` = "the request body" unless the caller names it)
=============== ====================================================================
``too-large``   the request body is larger than 65536 bytes
``not-utf8``    the request body is not UTF-8 (invalid byte at position 17)
``not-json``    the request body is not JSON: unexpected character at line 1, column 5
``too-deep``    the request body is JSON nested deeper than 1024 levels
``not-object``  the request body is not a JSON object (it is an array)
=============== ====================================================================

The component turns it into its :class:`~timkit.core.errors.TimkitError` with
:meth:`JsonBodyError.to_error` and renders that in its own protocol: :data:`MATRIX_CODES`
(``M_NOT_JSON``/``M_BAD_JSON``/``M_TOO_LARGE``) for Matrix-style JSON APIs,
:data:`FHIR_CODES` (``structure``/``too-costly``) behind FHIR edges. Deep nesting is a
limit of the parser (orjson stops at 1024 levels), not invalid JSON, and is reported as such.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from timkit.core.errors import Codes, IssueType, TimkitError
from timkit.core.web import read_stream

__all__ = [
    "FHIR_CODES",
    "MATRIX_CODES",
    "MAX_DEPTH",
    "JsonBodyError",
    "Problem",
    "parse_json",
    "parse_json_object",
    "read_body",
    "read_json",
]

MAX_DEPTH = 1024
"""Deepest nesting of arrays and objects the parser accepts (orjson's fixed limit)."""

_DEPTH_MESSAGE = "depth limit exceeded"
"""orjson's ``JSONDecodeError.msg`` for nesting deeper than :data:`MAX_DEPTH`."""


class Problem(StrEnum):
    """Why a JSON body cannot be used."""

    TOO_LARGE = "too-large"
    NOT_UTF8 = "not-utf8"
    NOT_JSON = "not-json"
    TOO_DEEP = "too-deep"
    NOT_OBJECT = "not-object"


MATRIX_CODES: Mapping[Problem, str] = {
    Problem.TOO_LARGE: Codes.TOO_LARGE,
    Problem.NOT_UTF8: Codes.NOT_JSON,
    Problem.NOT_JSON: Codes.NOT_JSON,
    Problem.TOO_DEEP: Codes.NOT_JSON,
    Problem.NOT_OBJECT: Codes.BAD_JSON,
}
"""Matrix error codes (client-server spec: ``M_NOT_JSON`` for a body that cannot be parsed,
``M_BAD_JSON`` for a parsed body of the wrong shape)."""

FHIR_CODES: Mapping[Problem, str] = {
    Problem.TOO_LARGE: IssueType.TOO_COSTLY,
    Problem.NOT_UTF8: IssueType.STRUCTURE,
    Problem.NOT_JSON: IssueType.STRUCTURE,
    Problem.TOO_DEEP: IssueType.TOO_COSTLY,
    Problem.NOT_OBJECT: IssueType.STRUCTURE,
}
"""FHIR ``IssueType`` codes for an ``OperationOutcome``."""

_STATUS = {Problem.TOO_LARGE: 413}


class JsonBodyError(ValueError):
    """A JSON body that cannot be used; ``str(error)`` names what was wrong.

    Attributes:
        problem: which check failed.
        message: the explanation (also ``str(error)``).
        status: the HTTP status it deserves (413 too large, else 400).
    """

    def __init__(self, problem: Problem, message: str) -> None:
        super().__init__(message)
        self.problem = problem
        self.message = message
        self.status = _STATUS.get(problem, 400)

    def to_error(
        self, codes: Mapping[Problem, str] | str, *, requirement: str | None = None
    ) -> TimkitError:
        """This error as a :class:`TimkitError` for the component's renderer.

        Args:
            codes: the errcode per problem (:data:`MATRIX_CODES`, :data:`FHIR_CODES`) or one
                errcode for all.
            requirement: the requirement id the body rule rests on, if any.
        """
        errcode = codes if isinstance(codes, str) else codes[self.problem]
        return TimkitError(self.status, errcode, self.message, requirement=requirement)


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return "null"


def parse_json(raw: bytes | str, *, what: str = "the request body") -> Any:
    """``raw`` parsed as JSON (any value).

    Args:
        raw: the body (bytes must be UTF-8).
        what: names the body in messages, e.g. ``"the Bundle"``.

    Raises:
        JsonBodyError: ``not-utf8``, ``not-json`` (with line, column and position) or
            ``too-deep`` (nested deeper than :data:`MAX_DEPTH`).
    """
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        if e.msg == _DEPTH_MESSAGE:
            raise JsonBodyError(
                Problem.TOO_DEEP, f"{what} is JSON nested deeper than {MAX_DEPTH} levels"
            ) from None
        if isinstance(raw, bytes):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as bad:
                raise JsonBodyError(
                    Problem.NOT_UTF8, f"{what} is not UTF-8 (invalid byte at position {bad.start})"
                ) from None
        raise JsonBodyError(
            Problem.NOT_JSON,
            f"{what} is not JSON: {e.msg} at line {e.lineno}, column {e.colno} (position {e.pos})",
        ) from None


def parse_json_object(raw: bytes | str, *, what: str = "the request body") -> dict[str, Any]:
    """``raw`` parsed as a JSON object.

    Raises:
        JsonBodyError: as :func:`parse_json`, or ``not-object`` for any other JSON value.
    """
    document = parse_json(raw, what=what)
    if not isinstance(document, dict):
        raise JsonBodyError(
            Problem.NOT_OBJECT, f"{what} is not a JSON object (it is {_kind(document)})"
        )
    return document


async def read_body(
    source: web.BaseRequest | aiohttp.StreamReader, limit: int, *, what: str = "the request body"
) -> bytes:
    """A request's body (or a stream's content), at most ``limit`` bytes.

    A declared ``Content-Length`` over the limit is refused before anything is read.

    Raises:
        JsonBodyError: ``too-large``.
        web.HTTPRequestTimeout: the body stalled (see :class:`timkit.core.web.ReadTimeouts`).
    """
    stream = source.content if isinstance(source, web.BaseRequest) else source
    declared = source.content_length if isinstance(source, web.BaseRequest) else None
    too_large = JsonBodyError(Problem.TOO_LARGE, f"{what} is larger than {limit} bytes")
    if declared is not None and declared > limit:
        raise too_large
    try:
        return await read_stream(stream, limit)
    except ValueError:
        raise too_large from None


async def read_json(
    request: web.BaseRequest,
    limit: int,
    *,
    require_object: bool = True,
    optional: bool = False,
    what: str = "the request body",
) -> Any:
    """The request's body read (at most ``limit`` bytes) and parsed as JSON.

    Args:
        request: the request.
        limit: the largest body in bytes.
        require_object: refuse any JSON value but an object.
        optional: an empty (or blank) body is ``{}`` instead of an error.
        what: names the body in messages.

    Raises:
        JsonBodyError: see the module docstring.
        web.HTTPRequestTimeout: the body stalled (see :class:`timkit.core.web.ReadTimeouts`).
    """
    raw = await read_body(request, limit, what=what)
    if optional and not raw.strip():
        return {}
    if require_object:
        return parse_json_object(raw, what=what)
    return parse_json(raw, what=what)
