"""Turn Matrix error responses into :class:`~timkit.core.errors.TimkitError`."""

from __future__ import annotations

import httpx

from timkit.core.errors import Codes, TimkitError


def raise_for_matrix_error(response: httpx.Response) -> None:
    """Raise a :class:`TimkitError` carrying the response's ``errcode`` if it is not 2xx."""
    if response.is_success:
        return
    try:
        body = response.json()
    except ValueError:
        body = {}
    errcode = body.get("errcode", Codes.UNKNOWN) if isinstance(body, dict) else Codes.UNKNOWN
    message = body.get("error", response.text) if isinstance(body, dict) else response.text
    raise TimkitError(response.status_code, str(errcode), str(message))
