"""The FHIR faces of the FHIR-Proxy, registered together.

* :mod:`~timkit.fhirproxy.api.search_routes`: ``/search`` (search-accesstoken, read-only,
  visibility rules);
* :mod:`~timkit.fhirproxy.api.owner_routes`: ``/owner`` (owner-accesstoken, owner rules
  ML-123874, ML-123482, ML-123880);
* :mod:`~timkit.fhirproxy.api.provider_fhir_routes`: ``/tim-provider-services/FHIR``
  (provider-accesstoken, the provider's own Organizations and Endpoints);
* :mod:`~timkit.fhirproxy.api.fhir_http`: what they share (body parsing, relay, Bundle
  filtering, delete checks).
"""

from __future__ import annotations

from aiohttp import web

from timkit.fhirproxy.api import owner_routes, provider_fhir_routes, search_routes


def setup(app: web.Application) -> None:
    """Add ``/search``, ``/owner`` and ``/tim-provider-services/FHIR`` to ``app``."""
    search_routes.setup(app)
    owner_routes.setup(app)
    provider_fhir_routes.setup(app)
