"""How a :class:`~timkit.client.session.TimClient` reaches its services.

Defaults are production's: DNS and the system trust store. The local federation
(``timkit client`` with ``--config``) fills ``hosts`` and ``ca_file`` from ``timkit status``
so that the domains ``*.tim.test`` resolve to loopback ports.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class ClientOptions:
    """Where the client finds its services and how it identifies itself.

    Attributes:
        directory_url: base URL of the VZD-FHIR-Directory's FHIR-Proxy and Auth-Service
            (``/tim-authenticate``, ``/search``, ``/owner-authenticate``, ``/owner``).
        ca_file: PEM bundle to trust instead of the system store (the local CA).
        hosts: Matrix domain → base URL serving its ``/.well-known/matrix/client``, for
            domains that DNS does not know (the local federation); empty in production.
        device_name: ``initial_device_display_name`` of new logins.
        client_id: the AF_10057 client identification (``X-TIM-Client-ID``), when the
            provider's Messenger-Proxy requires one; ``None`` sends none.
        client_secret: its secret (``X-TIM-Client-Secret``).
        timeout: seconds for each HTTP request (long-polling sync has its own).
    """

    directory_url: str
    ca_file: Path | None = None
    hosts: Mapping[str, str] = field(default_factory=dict)
    device_name: str = "timkit"
    client_id: str | None = None
    client_secret: str | None = None
    timeout: float = 30.0

    def client_headers(self) -> dict[str, str]:
        """The AF_10057 client identification headers (empty when not configured)."""
        if self.client_id is None:
            return {}
        return {"X-TIM-Client-ID": self.client_id, "X-TIM-Client-Secret": self.client_secret or ""}
