"""``/.well-known/`` on the public listener: exactly the two Matrix discovery documents.

* ``GET /.well-known/matrix/client`` (Matrix spec "Server Discovery"): a TI-M client finds the
  homeserver from the Matrix domain the actor types (AF_10057: "Der Akteur MUSS die
  Matrix-Domain des gewünschten Messenger-Service direkt im TI-Messenger-Client eingeben
  können"). Synapse serves it (``serve_client_wellknown``) with ``m.homeserver.base_url`` =
  its ``public_baseurl``, the proxy's client URL, so there is one source for that URL.
* ``GET /.well-known/matrix/server``: other homeservers find this one (relayed without the
  stage-1 check: it carries no X-Matrix header; see :mod:`.server_server`).

Both are relayed as Synapse answers them (``GET``, ``HEAD`` and the CORS ``OPTIONS``). Every
other path under ``/.well-known/``, including a trailing slash or more segments below the
two (Synapse's resources would answer those too), is 404 ``M_UNRECOGNIZED`` from the proxy
and never reaches Synapse; matched on decoded segments, so ``/.well-known/matrix/cli%65nt``
is the client document and ``/.well-known/matrix/client%2Fx`` is not.
"""

from __future__ import annotations

from timkit.core.errors import Codes, TimkitError
from timkit.core.request_target import RequestTarget

PREFIX = ".well-known"
"""The first path segment of every well-known URI (RFC 8615)."""
CLIENT = (PREFIX, "matrix", "client")
SERVER = (PREFIX, "matrix", "server")
SERVED = frozenset({CLIENT, SERVER})
"""The well-known documents relayed to Synapse."""
METHODS = ("GET", "HEAD", "OPTIONS")


def check(method: str, target: RequestTarget) -> None:
    """Pass a request for one of the :data:`SERVED` documents; refuse any other well-known.

    Raises:
        TimkitError: 404 ``M_UNRECOGNIZED`` for another path, 405 (``Allow``) for a method
            other than :data:`METHODS`.
    """
    if target.segments not in SERVED or target.trailing_slash:
        raise TimkitError(
            404,
            Codes.UNRECOGNIZED,
            "not found: this server's well-known documents are /.well-known/matrix/client "
            "and /.well-known/matrix/server",
        )
    if method not in METHODS:
        raise TimkitError(
            405,
            Codes.UNRECOGNIZED,
            f"{method} is not allowed on /{'/'.join(target.segments)}",
            headers={"Allow": ", ".join(METHODS)},
        )
