"""The organisation's homeserver: a stock Synapse, configured and launched by timkit."""
