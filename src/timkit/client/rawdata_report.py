"""ML-132588: the client delivers the raw data of a run only it can measure (AF_10058).

AF_10058 (publishing the own MXID in the VZD-FHIR-Directory with the HBA) runs between the
client, the IDP and the FHIR-Proxy; the Fachdienst never sees it. The client measures it and
hands the measurement to its Messenger-Proxy's intake (``POST /tim-rawdata/v1/runs`` with the
user's access token), which records it like its own runs, without personal data::

    async with measured_run(client.api, "AF_10058") as run:
        status = await publish_endpoint(...)
        run.status = status

Delivery never fails the use case: a refused or unreachable intake is logged, not raised.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator

from timkit.client.matrix_api import MatrixApi
from timkit.core.errors import TimkitError
from timkit.core.rawdata import FAILURE, SUCCESS, Measurement

log = logging.getLogger(__name__)

RUNS_PATH = "/tim-rawdata/v1/runs"
"""The Messenger-Proxy's intake for runs a client measured."""
PUBLISH = "AF_10058"
"""Akteur (User-HBA) im Verzeichnisdienst hinzufügen."""


async def report_run(
    api: MatrixApi, use_case: str, duration_ms: float, result: str, status: int
) -> None:
    """Deliver one measured run to the Messenger-Proxy; never raises on delivery failure.

    Args:
        api: the logged-in session's API (its access token authenticates the delivery).
        use_case: the use case id (the intake accepts ``AF_10058``).
        duration_ms: how long the run took.
        result: ``success`` or ``failure``.
        status: the HTTP status the run ended with.
    """
    run = {"use_case": use_case, "duration_ms": duration_ms, "result": result, "status": status}
    try:
        await api.call("POST", RUNS_PATH, json=run)
    except TimkitError as e:
        log.warning("raw data of %s not delivered: %d %s", use_case, e.status, e.describe())


@contextlib.asynccontextmanager
async def measured_run(api: MatrixApi, use_case: str) -> AsyncIterator[Measurement]:
    """Measure the enclosed block and deliver it as one run of ``use_case``.

    A normal exit reports ``success`` with status 200 (or what the block set on the yielded
    :class:`~timkit.core.rawdata.Measurement`; nothing when it set ``skip``); an exception
    reports ``failure`` with the :class:`TimkitError`'s status (500 for any other) and
    propagates unchanged. A cancelled block reports nothing.
    """
    outcome = Measurement()
    begin = time.monotonic()
    try:
        yield outcome
    except Exception as e:
        outcome.fail(e)
        await _deliver(api, use_case, begin, outcome)
        raise
    await _deliver(api, use_case, begin, outcome)


async def _deliver(api: MatrixApi, use_case: str, begin: float, outcome: Measurement) -> None:
    if outcome.skip:
        return
    duration = round((time.monotonic() - begin) * 1000.0, 3)
    result = outcome.result if outcome.result in (SUCCESS, FAILURE) else FAILURE
    status = outcome.status if outcome.status is not None else 200
    await report_run(api, use_case, duration, result, status)
