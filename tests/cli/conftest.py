"""Fixtures of the CLI tests: the real push receiver (for ``timkit push tail``)."""

from tests.pushreceiver.conftest import rx

__all__ = ["rx"]
