"""The FHIR-Proxy's logic between its api and storage: ownership and visibility rules,
owner and provider write checks, the signed federation list."""
