# -*- test-case-name: tests.test_transport -*-
"""
A self-signed certificate for trying TLS on one machine:

    python -m echotwist.certs            # writes cert.pem and key.pem here
    twistd -n echolab --listen ssl:9443:interface=127.0.0.1:privateKey=key.pem:certKey=cert.pem
    echolab-client --tls --ca cert.pem --host localhost --port 9443

The certificate names localhost, 127.0.0.1 and ::1, and is its own CA:
clients trust it with C{--ca cert.pem}. For a server others use, get a
certificate from a real CA instead.

Existing files are not overwritten (status 1, one line) unless C{--force}
is given: a key in use is not lost by running the command twice.
"""

import argparse
import datetime
import ipaddress
import os
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def make_self_signed(names=("localhost",), addresses=("127.0.0.1", "::1"), days=365):
    """
    @return: (certificate PEM, private key PEM), an EC P-256 key and a
        certificate valid for C{names} and C{addresses}.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    now = datetime.datetime.now(datetime.timezone.utc)
    alternatives = [x509.DNSName(n) for n in names] + [
        x509.IPAddress(ipaddress.ip_address(a)) for a in addresses
    ]
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(alternatives), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
    return (
        certificate.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )


def _write(path, data, mode, force=False):
    """
    Write a new file C{path}, or replace it when C{force}: the old one is
    removed first, so a new key is never written through a link or under
    an old file's looser mode.
    """
    if force and os.path.lexists(path):
        os.unlink(path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(path, mode)


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m echotwist.certs",
        description="Make a self-signed certificate for trying echolab with TLS.",
    )
    parser.add_argument("--out", default=".", help="directory to write into [.]")
    parser.add_argument(
        "--name", action="append", help="host name to certify [localhost]; repeatable"
    )
    parser.add_argument("--days", type=int, default=365, help="validity [365]")
    parser.add_argument(
        "--force",
        action="store_true",
        help="replace cert.pem and key.pem if they exist",
    )
    args = parser.parse_args(argv)
    if args.days < 1:
        parser.error("--days must be at least 1")
    cert_path = os.path.join(args.out, "cert.pem")
    key_path = os.path.join(args.out, "key.pem")
    existing = [p for p in (cert_path, key_path) if os.path.lexists(p)]
    if existing and not args.force:
        sys.exit(
            f"echotwist.certs: {' and '.join(existing)} already "
            f"{'exist' if len(existing) > 1 else 'exists'}; not overwriting "
            "(--force replaces them, --out writes elsewhere)"
        )
    cert, key = make_self_signed(tuple(args.name or ["localhost"]), days=args.days)
    try:
        _write(cert_path, cert, 0o644, args.force)
        _write(key_path, key, 0o600, args.force)
    except OSError as e:
        sys.exit(f"echotwist.certs: {e}")
    print(
        f"wrote {cert_path} (give it to clients: --ca) and {key_path} (keep it private)"
    )


if __name__ == "__main__":
    main()
