"""timkit's client SDK: the one client library components and tools share."""
