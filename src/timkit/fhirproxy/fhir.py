"""The FHIR faces of the FHIR-Proxy, registered together.

* :mod:`~timkit.fhirproxy.search`: ``/search`` (search-accesstoken, read-only,
  visibility rules);
* :mod:`~timkit.fhirproxy.owner`: ``/owner`` (owner-accesstoken, owner rules
  ML-123874, ML-123482, ML-123880);
* :mod:`~timkit.fhirproxy.provider_fhir`: ``/tim-provider-services/FHIR``
  (provider-accesstoken, the provider's own Organizations and Endpoints);
* :mod:`~timkit.fhirproxy.fhirhttp`: what they share (body parsing, relay, Bundle
  filtering, delete checks).
"""

from __future__ import annotations

from aiohttp import web

from timkit.fhirproxy import owner, provider_fhir, search


def setup(app: web.Application) -> None:
    """Add ``/search``, ``/owner`` and ``/tim-provider-services/FHIR`` to ``app``."""
    search.setup(app)
    owner.setup(app)
    provider_fhir.setup(app)
