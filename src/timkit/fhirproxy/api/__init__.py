"""The FHIR-Proxy's aiohttp edge: the app, its routes, request parsing and responses."""
