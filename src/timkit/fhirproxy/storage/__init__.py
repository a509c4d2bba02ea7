"""The FHIR-Proxy's own state: providers, TI-M domains, federation lists, audit log."""
