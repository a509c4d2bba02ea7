"""The Freigabeliste (I_TiMessengerContactManagement 1.0.2) served by the Messenger-Proxy.

* :mod:`.handlers`: ``Contact`` validation and :class:`~.handlers.ContactsService` (the API's
  logic, stage 2 of the permission check, 1:1-room records);
* :mod:`.api`: the aiohttp sub-application mounted at ``/tim-contact-mgmt/v1.0.2``.
"""
