"""The VZD-FHIR-Directory: a FHIR R4 server for gematik's six directory resource types."""
