"""Shared infrastructure for every timkit component: config, errors, TLS, lifecycle, logging.

Components import ``timkit.core`` (and the client ``timkit.sdk``) but never each other.
"""
