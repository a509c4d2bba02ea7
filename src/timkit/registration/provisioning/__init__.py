"""AF_10060: provisioning Messenger-Services for organisations (see ``docs/adr/0005``)."""
