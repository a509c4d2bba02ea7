"""The Messenger-Proxy: the organisation's gate for client and federation traffic.

So far it holds the outbound forward proxy that Synapse's federation traffic goes through.
"""
