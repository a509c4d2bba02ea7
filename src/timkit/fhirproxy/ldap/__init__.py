"""The VZD-LDAP-Directory sync: entry source, mapping to FHIR, code tables, the sync loop."""
