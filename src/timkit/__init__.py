"""timkit: an open implementation of gematik's TI-Messenger and the VZD-FHIR-Directory."""

__version__ = "0.1.0"
