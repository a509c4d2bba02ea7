"""ML-132588: a client delivers the raw data of a run it measured (AF_10058) to the Fachdienst.

AF_10058 (a User-HBA publishes its MXID in the VZD-FHIR-Directory) runs between the TI-M
client, the IDP and the FHIR-Proxy: the Fachdienst never sees it, yet must record its raw data
(ML-132588). The client measures the run and delivers it here, on the Messenger-Proxy's
public listener::

    POST /tim-rawdata/v1/runs
    Authorization: Bearer <the user's Matrix access token>
    {"use_case": "AF_10058", "duration_ms": 812.4, "result": "success", "status": 200}

    200 {}

The proxy asks its Synapse whose token it is (``/account/whoami``, fail closed: a homeserver
that cannot be asked refuses the delivery with 502) and writes one record with component
``client`` to its raw-data sink (:mod:`timkit.core.rawdata`; the user is not in it). Only use
cases a client measures are accepted (:data:`CLIENT_USE_CASES`); everything the proxy sees
itself it records itself.

Errors are Matrix JSON naming the field and :data:`RULE`: 401 ``M_MISSING_TOKEN`` without a
bearer token, ``M_UNKNOWN_TOKEN`` for one Synapse does not know; 400 ``M_NOT_JSON`` for a body
that is not JSON, ``M_BAD_JSON`` for a missing, unknown or mistyped field, ``M_INVALID_PARAM``
for a value out of range; 413 over :data:`MAX_BODY` bytes; 429 ``M_LIMIT_EXCEEDED`` (with
``retry_after_ms``) beyond :data:`RATE` per user; 404/405 ``M_UNRECOGNIZED`` for another path
or method under :data:`PREFIX`. The path is matched on decoded segments, so every spelling of
it reaches this check.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from aiohttp import web

from timkit.core import jsonbody
from timkit.core.errors import Codes, TimkitError
from timkit.core.ratelimit import RateLimit, TokenBuckets
from timkit.core.rawdata import FAILURE, SUCCESS, RawDataSink
from timkit.core.request_target import RequestTarget
from timkit.core.web import json_response
from timkit.proxy.inbound.synapse_relay import Relay

log = logging.getLogger(__name__)

PREFIX = "tim-rawdata"
"""The first path segment of the intake (decoded)."""
RUNS_PATH = (PREFIX, "v1", "runs")
"""``/tim-rawdata/v1/runs`` as decoded segments."""
RULE = "ML-132588"
"""AF_10058's Rohdatenerfassung: the rule every refusal names."""
COMPONENT = "client"
"""The component name in the records delivered here."""
CLIENT_USE_CASES = frozenset({"AF_10058"})
"""Use cases only a client can measure."""
RESULTS = frozenset({SUCCESS, FAILURE})
MAX_BODY = 4096
"""Largest request body in bytes (a run is about a hundred)."""
MAX_DURATION_MS = 24 * 3600 * 1000.0
"""Longest run accepted: a day."""
RATE = RateLimit(per_minute=60, burst=30)
"""Deliveries per user: AF_10058 runs are rare, a flood is refused."""
FIELDS: dict[str, str] = {
    "use_case": "a string",
    "duration_ms": "a number",
    "result": "a string",
    "status": "an integer",
}
"""Every field of a run (all required) and its JSON type."""


@dataclass(frozen=True, slots=True)
class ClientRun:
    """One run a client measured.

    Attributes:
        use_case: one of :data:`CLIENT_USE_CASES`.
        duration_ms: how long it took (0 to :data:`MAX_DURATION_MS`).
        result: ``success`` or ``failure``.
        status: the HTTP status the run ended with (100 to 599).
    """

    use_case: str
    duration_ms: float
    result: str
    status: int


def _bad(errcode: str, message: str) -> TimkitError:
    return TimkitError(400, errcode, message, requirement=RULE)


def _typed(name: str, value: Any) -> bool:
    kind = FIELDS[name]
    if kind == "a string":
        return isinstance(value, str)
    if isinstance(value, bool):
        return False
    if kind == "an integer":
        return isinstance(value, int)
    return isinstance(value, int | float)


def parse_run(body: bytes) -> ClientRun:
    """The run described by a request body (see the module docstring).

    Raises:
        TimkitError: 400 naming the field and what it must be (413 when too large is
            checked by the caller), citing :data:`RULE`.
    """
    try:
        document = jsonbody.parse_json_object(body)
    except jsonbody.JsonBodyError as e:
        raise e.to_error(jsonbody.MATRIX_CODES, requirement=RULE) from None
    unknown = sorted(set(document) - set(FIELDS))
    if unknown:
        raise _bad(Codes.BAD_JSON, f"unknown field {unknown[0][:64]!r} in the run")
    for name, kind in FIELDS.items():
        if name not in document:
            raise _bad(Codes.BAD_JSON, f"the run lacks {name!r} ({kind})")
        if not _typed(name, document[name]):
            raise _bad(Codes.BAD_JSON, f"{name!r} must be {kind}")
    use_case, result = document["use_case"], document["result"]
    duration, status = float(document["duration_ms"]), document["status"]
    if use_case not in CLIENT_USE_CASES:
        raise _bad(
            Codes.INVALID_PARAM,
            f"use_case must be one a client measures ({', '.join(sorted(CLIENT_USE_CASES))});"
            " the Fachdienst records the others itself",
        )
    if not math.isfinite(duration) or not 0 <= duration <= MAX_DURATION_MS:
        raise _bad(Codes.INVALID_PARAM, f"duration_ms must be between 0 and {MAX_DURATION_MS:.0f}")
    if result not in RESULTS:
        raise _bad(Codes.INVALID_PARAM, "result must be 'success' or 'failure'")
    if not 100 <= status <= 599:
        raise _bad(Codes.INVALID_PARAM, "status must be an HTTP status between 100 and 599")
    return ClientRun(use_case, duration, result, status)


def _bearer(request: web.Request) -> str:
    """The request's ``Authorization`` header if it is a bearer token (read once by the
    listener already: a repeated header never gets here).

    Raises:
        TimkitError: 401 ``M_MISSING_TOKEN`` otherwise.
    """
    authorization = request.headers.get("Authorization", "")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise TimkitError(
            401,
            Codes.MISSING_TOKEN,
            "send the user's Matrix access token as Authorization: Bearer <token>",
            requirement=RULE,
        )
    return authorization


class RunIntake:
    """``POST /tim-rawdata/v1/runs`` (see the module docstring).

    Args:
        relay: the listener's upstream, whose Synapse confirms access tokens.
        rawdata: the proxy's raw-data sink.
    """

    def __init__(self, relay: Relay, rawdata: RawDataSink) -> None:
        self.relay = relay
        self.rawdata = rawdata
        self._buckets = TokenBuckets(RATE)

    async def handle(self, request: web.Request, target: RequestTarget) -> web.Response:
        """Answer a request whose first decoded segment is :data:`PREFIX`.

        Raises:
            TimkitError: as the module docstring lists.
        """
        if target.segments != RUNS_PATH or target.trailing_slash:
            raise TimkitError(404, Codes.UNRECOGNIZED, "not found: POST /tim-rawdata/v1/runs")
        if request.method != "POST":
            raise TimkitError(
                405,
                Codes.UNRECOGNIZED,
                f"{request.method} is not allowed on /tim-rawdata/v1/runs (POST only)",
                headers={"Allow": "POST"},
            )
        try:
            user_id = await self.relay.whoami(_bearer(request))
        except TimkitError as e:
            raise TimkitError(e.status, e.errcode, e.message, requirement=RULE) from None
        wait = self._buckets.take(user_id)
        if wait > 0:
            retry_ms = math.ceil(wait * 1000)
            raise TimkitError(
                429,
                Codes.LIMIT_EXCEEDED,
                f"too many runs delivered; try again in {retry_ms} ms",
                requirement=RULE,
                extra={"retry_after_ms": retry_ms},
            )
        try:
            body = await jsonbody.read_body(request, MAX_BODY)
        except jsonbody.JsonBodyError as e:
            raise e.to_error(jsonbody.MATRIX_CODES, requirement=RULE) from None
        run = parse_run(body)
        start = self.rawdata.clock() - timedelta(milliseconds=run.duration_ms)
        self.rawdata.record(run.use_case, COMPONENT, start, run.duration_ms, run.result, run.status)
        return json_response({})
