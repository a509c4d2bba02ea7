"""Inbound traffic: the reverse proxy in front of Synapse."""
