# -*- test-case-name: tests.test_client_tls -*-
"""
How the client reaches a server: plain TCP or TLS (verified against the
system's trust store or a given CA file, host name checked), and whether
the connection is safe for a password or a token.

A TLS failure is never answered by trying plain TCP: the connection fails
and L{describe_failure} says why in one line.
"""

import re

from OpenSSL.SSL import Error as SSLError
from service_identity import VerificationError
from twisted.internet import error, ssl
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS

from echotwist.addresses import is_loopback, peer_host
from echotwist.i18n import _
from echotwist.prompts import format_address

_PEM_CERTIFICATE = re.compile(
    rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.DOTALL
)


class CAFileError(Exception):
    """
    The C{--ca} file cannot be used.
    """


def load_trust_root(ca_path=None):
    """
    What verifies the server's certificate.

    @param ca_path: a PEM file of one or more CA certificates; L{None}
        for the system's trust store.
    @raise CAFileError: with a reason for a person.
    """
    if ca_path is None:
        return ssl.platformTrust()
    try:
        with open(ca_path, "rb") as f:
            pem = f.read()
    except OSError as e:
        raise CAFileError(
            _("cannot read {path} ({why})").format(path=ca_path, why=e.strerror)
        ) from None
    blocks = _PEM_CERTIFICATE.findall(pem)
    if not blocks:
        raise CAFileError(_("{path} holds no PEM certificate").format(path=ca_path))
    try:
        certificates = [ssl.Certificate.loadPEM(block) for block in blocks]
    except Exception as e:
        raise CAFileError(
            _("{path}: not a valid certificate ({why})").format(path=ca_path, why=e)
        ) from None
    return ssl.trustRootFromCertificates(certificates)


def endpoint_for(reactor, host, port, tls=False, trust_root=None, timeout=10):
    """
    An endpoint that connects to C{host} (a name, or an IPv4 or IPv6
    address) and C{port}, trying each address the name resolves to.

    @param tls: whether to speak TLS; then the server's certificate must
        be signed by C{trust_root} and name C{host}.
    @param trust_root: from L{load_trust_root}.
    @param timeout: seconds to wait for the TCP connection.
    """
    endpoint = HostnameEndpoint(reactor, host, port, timeout=timeout)
    if not tls:
        return endpoint
    options = ssl.optionsForClientTLS(host, trustRoot=trust_root)
    return wrapClientTLS(options, endpoint)


def secrets_allowed(peer, tls, insecure):
    """
    Whether a password or a token may be sent on a connection to C{peer}:
    over TLS, to this machine's loopback, or when the person said
    C{--insecure}.

    @return: (allowed, why not), the reason for a person.
    """
    if tls or insecure or is_loopback(peer_host(peer)):
        return True, ""
    host = getattr(peer, "host", peer)
    return False, _(
        "{host} is not this machine and the connection is not encrypted"
    ).format(host=host)


def describe_security(transport, tls):
    """
    How the connection is protected, for the person: the TLS version and
    the subject of the server's certificate, or that it is plain TCP.

    @param transport: the connected protocol's transport.
    """
    if not tls:
        return _("plain TCP, not encrypted")
    version = "TLS"
    try:
        version = transport.getHandle().get_protocol_version_name()
    except Exception:
        pass
    subject = "?"
    certificate = transport.getPeerCertificate()
    if certificate is not None:
        parts = certificate.get_subject().get_components()
        subject = ", ".join(
            f"{key.decode('ascii', 'replace')}={value.decode('utf-8', 'replace')}"
            for key, value in parts
        )
    return _("{version}, certificate of {subject}").format(
        version=version.replace("TLSv", "TLS "), subject=subject
    )


def describe_failure(failure, host, port):
    """
    One line saying why connecting to C{host}:C{port} failed.

    @param failure: a L{twisted.python.failure.Failure}.
    """
    where = format_address(host, port)
    value = failure.value
    if failure.check(error.ConnectionRefusedError):
        line = _(
            "cannot connect to {where}: connection refused (is the server running?)"
        )
    elif failure.check(error.TimeoutError, error.UserError):
        line = _("cannot connect to {where}: timed out")
    elif failure.check(error.DNSLookupError):
        line = _("cannot connect to {where}: the host name does not resolve")
    elif failure.check(error.NoRouteError):
        line = _("cannot connect to {where}: no route to the host")
    elif failure.check(VerificationError):
        line = _(
            "cannot connect to {where} over TLS: the server's certificate "
            "is not for {host!r}; not connecting"
        )
    elif _tls_reason(value) is not None:
        line = _("cannot connect to {where} over TLS: {reason}; not connecting")
        value = _tls_reason(value)
    elif failure.check(error.ConnectionDone, error.ConnectionLost):
        line = _(
            "{where} closed the connection before saying welcome "
            "(is it an echolab server? does it want --tls?)"
        )
    else:
        line = _("cannot connect to {where}: {reason}")
        if failure.check(error.ConnectError):
            value = value.osError or (value.args[0] if value.args else value)
    return line.format(where=where, host=host, reason=value)


def _tls_reason(value):
    """
    A short reason for an OpenSSL failure, or L{None} if C{value} is not
    one.
    """
    if not isinstance(value, SSLError):
        return None
    text = " ".join(
        str(part)
        for detail in value.args
        for entry in (detail if isinstance(detail, list) else [detail])
        for part in (entry if isinstance(entry, tuple) else (entry,))
    )
    if "certificate verify failed" in text:
        return _(
            "the server's certificate could not be verified (certificate verify failed)"
        )
    if "wrong version number" in text or "packet length too long" in text:
        return _("the server does not speak TLS")
    return _("TLS handshake failed ({why})").format(why=text or repr(value))
