"""One JSON body parser that says why a body cannot be used: not UTF-8, not JSON (where),
nested too deep, not an object, too large; rendered as Matrix and FHIR errors."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from aiohttp import web

from timkit.core.errors import TimkitError
from timkit.core.jsonbody import (
    FHIR_CODES,
    MATRIX_CODES,
    MAX_DEPTH,
    JsonBodyError,
    Problem,
    parse_json,
    parse_json_object,
    read_json,
)
from timkit.core.web import json_response, running_app

DEEP = b"[" * 20_000 + b"]" * 20_000


def _problem(raw: bytes) -> JsonBodyError:
    with pytest.raises(JsonBodyError) as caught:
        parse_json_object(raw)
    return caught.value


def test_20000_levels_are_nested_too_deep_not_invalid() -> None:
    error = _problem(DEEP)
    assert error.problem is Problem.TOO_DEEP
    assert str(error) == "the request body is JSON nested deeper than 1024 levels"
    assert error.status == 400


@pytest.mark.parametrize("opener", [b"[", b'{"a":'])
def test_the_depth_limit_is_1024_levels(opener: bytes) -> None:
    closer = b"]" if opener == b"[" else b"}"
    assert parse_json(opener * MAX_DEPTH + b"1" + closer * MAX_DEPTH) is not None
    deeper = opener * (MAX_DEPTH + 1) + b"1" + closer * (MAX_DEPTH + 1)
    with pytest.raises(JsonBodyError, match="nested deeper than 1024"):
        parse_json(deeper)


def test_not_utf8_names_the_byte() -> None:
    error = _problem(b'{"name": "M\xfcller"}')
    assert error.problem is Problem.NOT_UTF8
    assert str(error) == "the request body is not UTF-8 (invalid byte at position 11)"


@pytest.mark.parametrize(
    ("raw", "where"),
    [
        (b'{"a": 1,}', "line 1, column 8 (position 7)"),
        (b'{\n  "a": tru\n}', "line 2"),
        (b"", "position 0"),
        (b'"\\ud800"', "position 1"),  # a lone surrogate escape: UTF-8, but no JSON string
    ],
)
def test_not_json_says_where(raw: bytes, where: str) -> None:
    error = _problem(raw)
    assert error.problem is Problem.NOT_JSON
    assert str(error).startswith("the request body is not JSON: ")
    assert where in str(error)


@pytest.mark.parametrize(
    ("raw", "kind"),
    [(b"[]", "an array"), (b'"x"', "a string"), (b"1.5", "a number"), (b"null", "null")],
)
def test_not_an_object_says_what_it_is(raw: bytes, kind: str) -> None:
    error = _problem(raw)
    assert error.problem is Problem.NOT_OBJECT
    assert str(error) == f"the request body is not a JSON object (it is {kind})"
    assert parse_json(raw) == parse_json(raw)  # any value is fine where none is required


def test_the_body_is_named_as_the_caller_names_it() -> None:
    with pytest.raises(JsonBodyError, match=r"^the Bundle is not a JSON object"):
        parse_json_object(b"[]", what="the Bundle")


def test_errors_render_per_protocol() -> None:
    deep = _problem(DEEP)
    assert deep.to_error(MATRIX_CODES).to_matrix() == {
        "errcode": "M_NOT_JSON",
        "error": "the request body is JSON nested deeper than 1024 levels",
    }
    outcome = deep.to_error(FHIR_CODES).to_operation_outcome()
    assert outcome["issue"][0]["code"] == "too-costly"
    assert outcome["issue"][0]["diagnostics"].endswith("nested deeper than 1024 levels")
    assert _problem(b"[]").to_error(MATRIX_CODES).errcode == "M_BAD_JSON"
    assert _problem(b"{").to_error(FHIR_CODES).errcode == "structure"
    oauth = deep.to_error("invalid_request").to_oauth()
    assert oauth["error"] == "invalid_request"


async def _post(content: Any) -> httpx.Response:
    """``content`` (bytes, or an async iterator: chunked) posted to a handler reading at most
    100 bytes with :func:`read_json`."""

    async def handler(request: web.Request) -> web.Response:
        try:
            body: Any = await read_json(request, 100, optional=True)
        except JsonBodyError as e:
            error: TimkitError = e.to_error(MATRIX_CODES)
            return json_response(error.to_matrix(), error.status)
        return json_response(body)

    app = web.Application()
    app.router.add_post("/", handler)
    async with (
        running_app(app, "127.0.0.1", 0) as runner,
        httpx.AsyncClient() as http,
    ):
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/"
        return await http.post(url, content=content)


async def test_read_json_refuses_a_declared_and_a_streamed_body_over_the_limit() -> None:
    declared = await _post(b"{}" + b" " * 200)
    assert declared.status_code == 413
    assert declared.json() == {
        "errcode": "M_TOO_LARGE",
        "error": "the request body is larger than 100 bytes",
    }

    async def chunked() -> Any:
        for chunk in (b'{"a": "', b"x" * 200, b'"}'):
            yield chunk

    streamed = await _post(chunked())
    assert streamed.status_code == 413
    assert streamed.json()["error"] == "the request body is larger than 100 bytes"


async def test_read_json_parses_objects_and_allows_an_optional_empty_body() -> None:
    assert (await _post(b'{"a": [1, 2]}')).json() == {"a": [1, 2]}
    assert (await _post(b"")).json() == {}
    cut = await _post(b"[" * 60 + b"]" * 40)
    assert cut.json()["errcode"] == "M_NOT_JSON"
