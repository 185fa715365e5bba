"""
What the client's tests share: a real server process (twistd from this
venv, in a temporary directory), the real client run under a
pseudo-terminal or with piped standard input, and throwaway TLS
certificates.
"""

import datetime
import ipaddress
import os
import re
import subprocess
import sys

BIN = os.path.dirname(sys.executable)
TWISTD = os.path.join(BIN, "twistd")
TIMEOUT = 30
"""Seconds any one wait may take before a test fails (generous: CI is slow)."""

CHEAP_HASH = ["--hash-memory", "19456", "--hash-time", "2"]
"""The cheapest argon2id parameters the server allows."""


LOCALES = {"en": "C.UTF-8", "ru": "ru_RU.UTF-8"}
"""The locale a test runs a program in, for each language."""


def client_env(config_home, language="en"):
    """
    The environment for a client subprocess: no profile of the person
    running the tests is ever touched (XDG_CONFIG_HOME is C{config_home},
    a directory of the test), the terminal is a VT100 (the line editor's
    cursor moves are the tests' to strip, L{tests.test_client.plain}), and
    the locale is C{language}'s, whatever the locale of the tests.
    """
    env = dict(os.environ)
    env.pop("PYTHONWARNINGS", None)
    env.pop("LANGUAGE", None)
    env.update(
        {
            "TERM": "vt100",
            "XDG_CONFIG_HOME": os.path.abspath(config_home),
            "LC_ALL": LOCALES[language],
        }
    )
    return env


def translator(language):
    """
    The shipped catalog's C{gettext} for C{language}: what a test expects
    the programs to say in it.
    """
    import gettext

    from echotwist import i18n

    return gettext.translation(
        i18n.DOMAIN, i18n.LOCALE_DIR, languages=[language], fallback=True
    ).gettext


def client_command(*args):
    """
    The command line of the real client, as an installed user runs it.
    """
    return [sys.executable, "-m", "echotwist.client", *args]


def server_env():
    """
    A server's environment: the C locale, so its console lines (which the
    tests read) are English whatever the tests' locale.
    """
    env = dict(os.environ)
    env.pop("LANGUAGE", None)
    env["LC_ALL"] = LOCALES["en"]
    return env


class ServerProcess:
    """
    A real C{twistd -n echolab} in its own temporary directory, on a free
    port of 127.0.0.1.

    @ivar port: the port it listens on.
    @ivar directory: its working directory (its data directory is inside).
    """

    def __init__(self, directory, mode="auth", extra=(), port=0):
        """
        @param directory: a directory of the test to run in (made here if
            missing; a server started again in it keeps its data).
        @param port: the port to listen on; 0 for a free one.
        """
        self.directory = os.path.abspath(directory)
        self.mode = mode
        self.extra = list(extra)
        self.process = None
        self.port = port

    def start(self):
        """
        Start the server and wait for its listening line.
        """
        os.makedirs(self.directory, exist_ok=True)
        command = [
            TWISTD,
            "--pidfile=",
            "-n",
            "echolab",
            "--port",
            str(self.port),
            "--mode",
            self.mode,
            "--data-dir",
            os.path.join(self.directory, "data"),
            *CHEAP_HASH,
            *self.extra,
        ]
        self.process = subprocess.Popen(
            command,
            cwd=self.directory,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=server_env(),
        )
        seen = []
        # readline blocks until the line or EOF: no polling, no sleeping.
        for line in self.process.stdout:
            text = line.decode("utf-8", "replace")
            seen.append(text)
            found = re.search(r"listening on \S+:(\d+)", text)
            if found:
                self.port = int(found.group(1))
                return self
        self.stop()
        raise RuntimeError("the server did not start:\n" + "".join(seen))

    def stop(self):
        """
        Stop the server (SIGTERM) and wait for it.
        """
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process is not None:
            self.process.stdout.close()


def make_certificate(common_name, hosts, issuer=None):
    """
    A throwaway certificate: self-signed CA when C{issuer} is L{None},
    otherwise a server certificate for C{hosts} (names or IP addresses)
    signed by C{issuer}.

    @param issuer: (certificate, key) of the signing CA.
    @return: (certificate, key, PEM of the certificate, PEM of the key).
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
    )
    if issuer is None:
        builder = (
            builder.issuer_name(name)
            .add_extension(
                x509.BasicConstraints(ca=True, path_length=None), critical=True
            )
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                critical=False,
            )
        )
        signing_key = key
    else:
        issuer_certificate, signing_key = issuer
        alternatives = []
        for host in hosts:
            try:
                alternatives.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                alternatives.append(x509.DNSName(host))
        builder = (
            builder.issuer_name(issuer_certificate.subject)
            .add_extension(x509.SubjectAlternativeName(alternatives), critical=False)
            .add_extension(
                x509.BasicConstraints(ca=False, path_length=None), critical=True
            )
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                critical=False,
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(
                    issuer_certificate.public_key()
                ),
                critical=False,
            )
        )
    certificate = builder.sign(signing_key, hashes.SHA256())
    certificate_pem = certificate.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return certificate, key, certificate_pem, key_pem
