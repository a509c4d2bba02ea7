"""The TI-M client SDK for actors (``timkit.client``): async, typed, end-to-end encrypted.

Every call goes through the service's Messenger-Proxy (Client.adoc "Matrix - Client-Server
API"). Matrix sync, rooms and Olm/Megolm run on matrix-nio with vodozemac underneath
(ADR 0007); nio's types never leave this package. Errors are
:class:`~timkit.core.errors.TimkitError` with the rule that refused an action.
"""
