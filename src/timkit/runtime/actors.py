"""How actors' clients reach the local federation: :class:`~timkit.client.options.ClientOptions`
derived from the config and the provisioned services (no DNS for ``*.tim.test``)."""

from __future__ import annotations

from timkit.client.options import ClientOptions
from timkit.runtime.backend import read_records
from timkit.runtime.config import TimkitConfig
from timkit.runtime.layout import Layout
from timkit.runtime.plan import endpoints, fhir_proxy_url


def client_options(config: TimkitConfig, *, device_name: str = "timkit client") -> ClientOptions:
    """The FHIR-Proxy's URL, the local CA and every provisioned service's domain → client URL.

    Services the Registrierungs-Dienst provisioned while the federation ran are included
    (their records live in the data directory).
    """
    layout = Layout(config.data_dir)
    hosts = {s.domain: endpoints(config, s).client_url for s in read_records(layout)}
    return ClientOptions(
        directory_url=fhir_proxy_url(config),
        ca_file=layout.ca_cert,
        hosts=hosts,
        device_name=device_name,
    )
