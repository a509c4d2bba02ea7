"""The FHIR-Proxy: the VZD-FHIR-Directory's only door.

It authenticates TI-M users, owners and providers, enforces who may read and change what,
forwards FHIR requests to the FHIR-Directory (on loopback or an internal network), keeps the
signed federation list and synchronises base entries from the LDAP directory.
"""
