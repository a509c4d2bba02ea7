"""The bounded property-based conformance run: shared machinery.

Schemathesis drives ``requests`` synchronously, so the servers under test cannot share the
test's event loop. :class:`BackgroundLoop` runs them (real aiohttp apps, each on its own
free port, over real sockets; TLS where the component serves TLS) on an event loop of their
own in a daemon thread; the tests talk to them like any client.

:func:`run_operation` is the one place the run's rules live: a fixed seed (Hypothesis
``derandomize``), a bounded number of examples per operation, no deadline and no example
database left behind; every response goes through :data:`CHECKS` (no 5xx, status code, media
type, body and headers as the OpenAPI document declares them, authentication enforced).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Callable, Coroutine
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any, TypeVar

import hypothesis
import pytest
import requests
from hypothesis import HealthCheck, given
from hypothesis import strategies as st
from schemathesis import CheckFunction
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err
from schemathesis.schemas import APIOperation, BaseSchema
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

T = TypeVar("T")
Operation = APIOperation[Any, Any, Any, Any]

OPENAPI = Path(__file__).parents[1] / "data" / "openapi"
"""Unmodified copies of gematik's OpenAPI documents (see its README)."""

EXAMPLES = int(os.environ.get("TIMKIT_CONFORMANCE_EXAMPLES", "150"))
"""Examples per operation and generation mode, positive and negative (so 300 per operation);
override with TIMKIT_CONFORMANCE_EXAMPLES for a longer run."""

CHECKS: list[CheckFunction] = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    ignored_auth,
    unsupported_method,
]
"""What every response must pass: no 5xx and nothing outside the OpenAPI document."""

NEGATIVE_CHECKS: list[CheckFunction] = [*CHECKS, negative_data_rejection]
"""For data the document forbids, in addition: it is refused with a 4xx."""


def operations(schema: BaseSchema) -> list[Operation]:
    """Every operation of ``schema``.

    Raises:
        InvalidSchema: a part of the document schemathesis cannot read (the run must not
            quietly test less).
    """
    found = []
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            raise result.err()
        found.append(result.ok())
    return found


class BackgroundLoop:
    """An event loop in a daemon thread that keeps async context managers entered.

    ``enter`` runs ``__aenter__`` on the loop and returns its value; ``close`` leaves every
    entered context (last first) and stops the thread.
    """

    def __init__(self, timeout: float = 60.0) -> None:
        self.timeout = timeout
        self.loop = asyncio.new_event_loop()
        self._stack = contextlib.AsyncExitStack()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="conformance-servers", daemon=True
        )
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run ``coroutine`` on the loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(self.timeout)

    def enter(self, manager: AbstractAsyncContextManager[T]) -> T:
        """Enter ``manager`` on the loop; it is left by :meth:`close`."""
        return self.run(self._stack.enter_async_context(manager))

    def close(self) -> None:
        """Leave every entered context, then stop and close the loop."""
        try:
            self.run(self._stack.aclose())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(self.timeout)
            self.loop.close()


def run_operation(
    cases: st.SearchStrategy[T],
    call: Callable[[T], None],
    *,
    max_examples: int = EXAMPLES,
) -> None:
    """Send ``max_examples`` cases drawn from ``cases`` through ``call``, derandomized.

    ``call`` sends one case and validates its response (raising on a failed check); the
    first failure, shrunk, fails the test. An operation schemathesis can make no case of
    (negative data for an operation with nothing to violate) is skipped, saying so.
    """

    @hypothesis.settings(
        max_examples=max_examples,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate, hypothesis.Phase.shrink],
        print_blob=False,
    )
    @given(case=cases)
    def run(case: T) -> None:
        call(case)

    try:
        run()
    except hypothesis.errors.Unsatisfiable:
        pytest.skip("schemathesis can generate no data of this kind for this operation")


def session(verify: str | bool = True) -> requests.Session:
    """A ``requests`` session for one target (``verify``: CA file of its TLS, or False)."""
    http = requests.Session()
    http.verify = verify
    return http
