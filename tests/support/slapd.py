"""A throwaway OpenLDAP server for tests: its own slapd.conf, an mdb database, a free port.

The binaries come from the system (``scripts/test-deps`` installs Debian's ``slapd``). The
schema is core + cosine + inetOrgPerson + ``tests/data/ldap/vzd.schema`` (the VZD attributes).
slapd runs in the foreground as a child that gets SIGTERM when the test process dies; when the
tests run as root it runs as the ``openldap`` user, which owns the database directory. Each test
takes a fresh subtree (:meth:`SlapdServer.subtree`) so one server serves the whole session.
"""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.process import child_setup, stop, wait_ready
from timkit.core.process import free_port

with warnings.catch_warnings():  # ldap3 2.9 imports names that pyasn1 0.6 deprecates
    warnings.simplefilter("ignore", DeprecationWarning)
    import ldap3

SCHEMA = Path(__file__).parents[1] / "data" / "ldap" / "vzd.schema"
SYSTEM_SCHEMAS = ("core", "cosine", "inetorgperson")
BASE_DN = "dc=data,dc=vzd"
ADMIN_DN = f"cn=admin,{BASE_DN}"
_subtrees = itertools.count(1)


def _binary(name: str) -> str:
    for candidate in (f"/usr/sbin/{name}", shutil.which(name)):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise RuntimeError(f"OpenLDAP {name} is not installed; run scripts/test-deps")


def _config(root: Path, port: int, password: str) -> str:
    includes = "\n".join(f"include /etc/ldap/schema/{name}.schema" for name in SYSTEM_SCHEMAS)
    return f"""{includes}
include {SCHEMA}
pidfile {root}/slapd.pid
argsfile {root}/slapd.args
modulepath /usr/lib/ldap
moduleload back_mdb
database mdb
maxsize 104857600
suffix "{BASE_DN}"
rootdn "{ADMIN_DN}"
rootpw {password}
directory {root}/db
index objectClass eq
index telematikID eq
index entryCSN,entryUUID eq
"""


@dataclass
class SlapdServer:
    """A running slapd; bind as :attr:`bind_dn` with :attr:`password` to write."""

    url: str
    password: str
    base_dn: str = BASE_DN
    bind_dn: str = ADMIN_DN
    _connections: list[ldap3.Connection] = field(default_factory=list)

    def connect(self) -> ldap3.Connection:
        """A new connection bound as the administrator (closed when the server stops)."""
        connection = ldap3.Connection(
            ldap3.Server(self.url, get_info=ldap3.NONE),
            user=self.bind_dn,
            password=self.password,
            auto_bind=True,
            raise_exceptions=True,
        )
        self._connections.append(connection)
        return connection

    def subtree(self, name: str = "test") -> str:
        """Create a fresh, empty ``ou`` below the base DN; returns its DN."""
        dn = f"ou={name}-{next(_subtrees)},{self.base_dn}"
        self.connect().add(dn, ["organizationalUnit"], {"ou": dn.split(",")[0][3:]})
        return dn

    def close(self) -> None:
        for connection in self._connections:
            if connection.bound:
                connection.unbind()


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


@contextmanager
def slapd_server() -> Iterator[SlapdServer]:
    """Start slapd on a fresh database with the base entry; stop and remove it afterwards."""
    slapd, slaptest = _binary("slapd"), _binary("slaptest")
    user = pwd.getpwnam("openldap") if os.geteuid() == 0 else None
    root = Path(tempfile.mkdtemp(prefix="timkit-slapd-"))
    password = os.urandom(12).hex()
    port = free_port()
    try:
        (root / "db").mkdir()
        config = root / "slapd.conf"
        config.write_text(_config(root, port, password))
        if user is not None:
            for path in (root, root / "db", config):
                os.chown(path, user.pw_uid, user.pw_gid)
        preexec = child_setup(user, signal.SIGTERM)  # SIGTERM when the test process dies
        subprocess.run(
            [slaptest, "-u", "-f", str(config)],
            check=True,
            capture_output=True,
            preexec_fn=preexec,
            timeout=60,
        )
        log = (root / "log").open("ab")
        server = subprocess.Popen(
            [slapd, "-d", "0", "-f", str(config), "-h", f"ldap://127.0.0.1:{port}/"],
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=preexec,
            cwd=root,
        )
        log.close()
        running = SlapdServer(f"ldap://127.0.0.1:{port}", password)
        try:
            wait_ready(server, "slapd", lambda: _accepts(port), root / "log", timeout=30)
            base = {"objectClass": ["top", "dcObject", "organization"], "dc": "data", "o": "VZD"}
            running.connect().add(BASE_DN, attributes=base)
            yield running
        finally:
            running.close()
            stop(server, signal.SIGTERM, timeout=30)
    finally:
        shutil.rmtree(root, ignore_errors=True)
