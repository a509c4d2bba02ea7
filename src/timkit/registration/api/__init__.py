"""The Registrierungs-Dienst's HTTP edge: every route, one module per route group.

=================  ===============================================================
module             routes
=================  ===============================================================
:mod:`.app`        the application: error rendering (JSON or HTML page), security
                   headers, ``/health``
:mod:`.pages`      the server-rendered pages (AF_10103, accounts, AF_10060)
:mod:`.org`        ``/api/v1/organisations/…``, accounts, logins, invitations, audit
:mod:`.services`   ``/api/v1/services…``, ``/api/v1/domains/check`` (AF_10060)
:mod:`.token`      ``POST /api/v1/token`` (I_requestToken)
:mod:`.federation` ``GET /federation`` for the RD's Messenger-Proxies (AF_10064)
:mod:`.invite`     ``POST /vzd/invite`` (stage 3 for the RD's Messenger-Proxies)
=================  ===============================================================

Each module parses, authorises and responds; the logic lives in the handlers next to it
(``accounts/``, ``verification/``, ``provisioning/``, :mod:`timkit.registration.invite_policy`,
:mod:`timkit.registration.requesttoken`, :mod:`timkit.registration.list_cache`).
"""

from timkit.registration.api.app import create_app

__all__ = ["create_app"]
