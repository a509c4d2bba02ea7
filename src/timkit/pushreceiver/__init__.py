"""Local push receiver: stands in for devices and push services in the local federation.

It speaks the real protocols so the Push-Gateway's real delivery code runs end to end:
a WebPush push resource that verifies VAPID and decrypts ``aes128gcm`` payloads with the
subscription's keys, UnifiedPush endpoints, an FCM HTTP v1 server with its OAuth token
endpoint, and an APNs HTTP/2 server with token auth. Every push received lands in the
:class:`~timkit.pushreceiver.inbox.Inbox` (page, JSON API, ``timkit push tail``).
"""
