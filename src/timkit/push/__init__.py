"""Push-Gateway: the Matrix Push Gateway API v1 with WebPush, UnifiedPush, FCM and APNs delivery.

Synapse's pushers ``POST /_matrix/push/v1/notify``; the gateway dispatches each device of the
notification to the backend configured for its ``app_id`` and answers the pushkeys that are
gone (seed 002 §4.3.2, ML-123669, ML-123667).
"""
