"""Outbound traffic: what the organisation's Synapse sends to other homeservers."""
