"""The FHIR-Proxy: the VZD-FHIR-Directory's only door (``python -m timkit.fhirproxy``).

It authenticates TI-M users, owners and providers, enforces who may read and change what,
forwards FHIR requests to the FHIR-Directory (on loopback or an internal network), keeps the
signed federation list and synchronises base entries from the LDAP directory.

Layout: ``api/`` (the aiohttp app, its routes, request parsing and answers) → ``handlers/``
(the rules and logic, on typed arguments) → ``storage/`` (its own tables) and ``upstream``
(the FHIR-Directory); ``auth/`` holds who is calling (access tokens, IDP, RegService and
Matrix OpenID tokens, PASSporTs, rate limits), ``ldap/`` the LDAP sync.
"""
