"""Which client requests are runs of a use case the Messenger-Proxy records (Rohdatenerfassung).

gematik asks the Fachdienst to record raw data of every use-case run (seed 002 §6.4 to §6.10,
ML-132587 … ML-132593; :mod:`timkit.core.rawdata`). Besides the invites (AF_10104/AF_10061)
and inbound transactions (AF_10062) that :mod:`timkit.proxy.inbound.app` records with their
checks, the inbound listener records, one run per request:

* **AF_10057** (ML-132587), the actor's login: ``POST /_matrix/client/<version>/login``, and
  ``POST …/register`` (seed 002 §6.4: "Der Ablauf der Registrierung ist analog dem des
  Login-Verfahrens"). The 401 of a User-Interactive Authentication step (its body names
  ``flows``) ends no run: the run ends with the step that completes or fails it.
* **AF_10063** (ML-132591), events between actors: ``PUT``/``POST`` of
  ``…/rooms/{roomId}/send/{eventType}[/{txnId}]``, ``…/state/{eventType}[/{stateKey}]`` and
  ``…/redact/{eventId}[/{txnId}]``. ``m.room.member`` state events are membership changes,
  not event exchange: an invite among them is recorded as AF_10104/AF_10061 with its check.

Paths are matched on the decoded segments (:func:`timkit.core.request_target.parse_target`)
under every client API version prefix Synapse serves
(:func:`timkit.proxy.inbound.endpoints.client_tails`), so ``/_matrix/client/r0/log%69n`` is a
login like ``/_matrix/client/v3/login``. A path Synapse does not route (``login/`` with a
trailing slash, an unknown version prefix) is no run: Synapse answers it 404.
"""

from __future__ import annotations

from timkit.core.jsonbody import JsonBodyError, parse_json
from timkit.core.request_target import RequestTarget
from timkit.proxy.inbound.endpoints import Compiled, client_tails, compile_parts, match_parts

__all__ = ["EVENTS", "LOGIN", "is_interim", "use_case"]

LOGIN = "AF_10057"
"""Anmeldung eines Akteurs am Messenger-Service (ML-132587)."""
EVENTS = "AF_10063"
"""Austausch von Events zwischen Akteuren innerhalb einer Organisation (ML-132591)."""
MEMBER = "m.room.member"

_WRITES = frozenset({"PUT", "POST"})
_LOGIN_TAILS = frozenset({("login",), ("register",)})
_EVENT_PATHS: tuple[Compiled, ...] = tuple(
    compile_parts(tuple(path.split("/")))
    for path in (
        "rooms/{room_id}/send/{event_type}",
        "rooms/{room_id}/send/{event_type}/{txn_id}",
        "rooms/{room_id}/state/{event_type}",
        "rooms/{room_id}/state/{event_type}/{state_key}",
        "rooms/{room_id}/redact/{event_id}",
        "rooms/{room_id}/redact/{event_id}/{txn_id}",
    )
)


def use_case(method: str, target: RequestTarget) -> str | None:
    """The use case a client request is one run of (:data:`LOGIN`, :data:`EVENTS`), or None."""
    if method not in _WRITES:
        return None
    for _version, tail in client_tails(target.segments):
        if tail in _LOGIN_TAILS:
            return LOGIN if method == "POST" and not target.trailing_slash else None
        for pattern in _EVENT_PATHS:
            params = match_parts(pattern, tail)
            if params is None:
                continue
            if tail[2] == "state" and params["event_type"] == MEMBER:
                return None
            return EVENTS
    return None


def is_interim(use_case_id: str, status: int, body: bytes | None) -> bool:
    """Whether a response ends no run of ``use_case_id``: the 401 of an AF_10057
    User-Interactive Authentication step, whose JSON body names the ``flows`` to go on with.

    Args:
        use_case_id: the run's use case.
        status: the response status.
        body: the response body when the proxy holds it whole (None when it was streamed).
    """
    if use_case_id != LOGIN or status != 401 or not body:
        return False
    try:
        document = parse_json(body, what="the homeserver's answer")
    except JsonBodyError:
        return False
    return isinstance(document, dict) and isinstance(document.get("flows"), list)
