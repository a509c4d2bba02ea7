"""Matrix error responses become a TimkitError carrying the server's status, errcode and text."""

from __future__ import annotations

import httpx
import pytest

from timkit.core.errors import Codes, TimkitError
from timkit.sdk.errors import raise_for_matrix_error

REQUEST = httpx.Request("GET", "https://127.0.0.1:8481/_matrix/client/v3/account/whoami")


def _raised(response: httpx.Response) -> TimkitError:
    with pytest.raises(TimkitError) as raised:
        raise_for_matrix_error(response)
    return raised.value


@pytest.mark.parametrize("status", [200, 201, 204])
def test_success_raises_nothing(status: int) -> None:
    raise_for_matrix_error(httpx.Response(status, request=REQUEST))


def test_matrix_error_keeps_status_errcode_and_message() -> None:
    body = {"errcode": "M_UNKNOWN_TOKEN", "error": "Invalid access token passed."}
    error = _raised(httpx.Response(401, json=body, request=REQUEST))
    assert (error.status, error.errcode, error.message) == (
        401,
        Codes.UNKNOWN_TOKEN,
        "Invalid access token passed.",
    )


@pytest.mark.parametrize(
    "content", [b"<html>Bad Gateway</html>", b'["M_FORBIDDEN"]', b"", b"\xff\xfe"]
)
def test_a_body_that_is_no_json_object_is_m_unknown_with_the_text(content: bytes) -> None:
    response = httpx.Response(502, content=content, request=REQUEST)
    error = _raised(response)
    assert (error.status, error.errcode, error.message) == (502, Codes.UNKNOWN, response.text)


def test_an_object_without_errcode_is_m_unknown() -> None:
    error = _raised(httpx.Response(500, json={"error": "oops"}, request=REQUEST))
    assert (error.errcode, error.message) == (Codes.UNKNOWN, "oops")
