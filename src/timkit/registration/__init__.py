"""The Registrierungs-Dienst: organisations prove who they are, Org-Admins provision services.

* AF_10103: an organisation authenticates with its SMC-B (OIDC at the IDP-Dienst) or by KIM
  and gets an Org-Admin account (password plus a second factor).
* AF_10060: the Org-Admin provisions Messenger-Services through a provisioning backend; the
  RD registers their domains in the federation list at the VZD-FHIR-Directory.
* ``I_internVerification``: the federation list and the stage-3 check for the proxies.
* ``I_requestToken``: RegService-OpenID-Tokens for the directory's ``/owner-authenticate``.
"""
