"""Stand-in for gematik's central IDP-Dienst: an OpenID Connect provider for the local run.

Authorization code flow with mandatory PKCE (S256); ID tokens carry gematik's claims
(``idNummer``, ``professionOID``, ``organizationName``, ...) and are signed ES256 or
BP256R1. Identities come from virtual SMC-B and HBA cards; a card-selection page stands in
for the Authenticator. Relying parties validate its tokens with the same code they use for
the real IDP-Dienst; in production they are pointed at that one by issuer and JWKS.

``api`` (routes, rendering) → ``handlers`` (the flow) → ``grants`` (in-memory codes);
``tokens`` signs, ``cards`` loads identities, ``keys`` the signing key.
"""
