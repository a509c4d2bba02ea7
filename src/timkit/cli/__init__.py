"""The ``timkit`` command line."""
