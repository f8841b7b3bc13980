"""A throwaway PKI for TLS tests (CPython, the `cryptography` package).

make_pki(folder) writes PEM files and returns their paths:

    ca.pem / ca.key                  the CA the client trusts
    server.pem / server.key          DNS:localhost, IP:127.0.0.1, signed by the CA
    other-host.pem / .key            valid, signed by the CA, but for DNS:elsewhere.example only
    expired.pem / .key               signed by the CA, validity ended yesterday
    future.pem / .key                signed by the CA, valid from tomorrow
    rogue-ca.pem / rogue-ca.key      a CA with the same name as ca.pem, another key
    rogue-server.pem / .key          DNS:localhost, IP:127.0.0.1, signed by the rogue CA
    client.pem / client.key          a client certificate (CN=node-1) signed by the CA
    client-enc.key                   client.key encrypted with KEY_PASSWORD (PKCS#8 PEM)
    other-ca.pem                     another CA, unrelated to the broker
    bundle.pem                       other-ca.pem, then ca.pem: a CA bundle, the one that
                                     matters last
    ca-text.pem                      ca.pem after a text dump of it, as `openssl ca` and
                                     `openssl x509 -text` write certificates
    bundle.der                       other-ca, then ca, as DER end to end

Keys are EC P-256: small and quick, and what mbedTLS on a board handles well.
"""
import datetime
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DAY = datetime.timedelta(days=1)
KEY_PASSWORD = b"key-pw-41c7"


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "mqnode tests"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _key():
    return ec.generate_private_key(ec.SECP256R1())


def _write(folder, stem, cert, key):
    (folder / f"{stem}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / f"{stem}.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    (folder / f"{stem}.key").chmod(0o600)


def _ca(cn):
    key = _key()
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(cn))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - DAY).not_valid_after(now + 365 * DAY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                         False), critical=True)
            .sign(key, hashes.SHA256()))
    return cert, key


def _leaf(ca_cert, ca_key, cn, dns=(), ips=(), client=False, start=-1, end=365):
    key = _key()
    now = datetime.datetime.now(datetime.timezone.utc)
    b = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(ca_cert.subject)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now + start * DAY).not_valid_after(now + end * DAY)
         .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
         .add_extension(x509.ExtendedKeyUsage(
             [ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH]),
             critical=False))
    names = [x509.DNSName(d) for d in dns] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    if names:
        b = b.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return b.sign(ca_key, hashes.SHA256()), key


def _text_dump(cert):
    # The head of what `openssl x509 -text` prints before the PEM block.
    return ("Certificate:\n    Data:\n        Version: 3 (0x2)\n"
            "        Serial Number:\n            %x\n"
            "        Signature Algorithm: ecdsa-with-SHA256\n"
            "        Issuer: %s\n        Validity\n"
            "            Not Before: %s\n            Not After : %s\n"
            "        Subject: %s\n" % (
                cert.serial_number, cert.issuer.rfc4514_string(),
                cert.not_valid_before_utc, cert.not_valid_after_utc,
                cert.subject.rfc4514_string())).encode()


def make_pki(folder):
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    ca, ca_key = _ca("mqnode test CA")
    rogue, rogue_key = _ca("mqnode test CA")       # same name, different key
    _write(folder, "ca", ca, ca_key)
    _write(folder, "rogue-ca", rogue, rogue_key)
    here = dict(dns=["localhost"], ips=["127.0.0.1"])
    _write(folder, "server", *_leaf(ca, ca_key, "localhost", **here))
    _write(folder, "other-host", *_leaf(ca, ca_key, "elsewhere.example",
                                        dns=["elsewhere.example"]))
    _write(folder, "expired", *_leaf(ca, ca_key, "localhost", start=-30, end=-1, **here))
    _write(folder, "future", *_leaf(ca, ca_key, "localhost", start=1, end=30, **here))
    _write(folder, "rogue-server", *_leaf(rogue, rogue_key, "localhost", **here))
    client, client_key = _leaf(ca, ca_key, "node-1", client=True)
    _write(folder, "client", client, client_key)
    (folder / "client-enc.key").write_bytes(client_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(KEY_PASSWORD)))
    other, _ = _ca("mqnode other CA")
    pem = ca.public_bytes(serialization.Encoding.PEM)
    (folder / "other-ca.pem").write_bytes(other.public_bytes(serialization.Encoding.PEM))
    (folder / "bundle.pem").write_bytes(b"# CA bundle\n" + (folder / "other-ca.pem").read_bytes()
                                        + b"\n" + pem)
    (folder / "ca-text.pem").write_bytes(_text_dump(ca) + pem)
    (folder / "bundle.der").write_bytes(other.public_bytes(serialization.Encoding.DER)
                                        + ca.public_bytes(serialization.Encoding.DER))
    return {p.stem if p.suffix == ".pem" else p.stem + ".key": p
            for p in folder.iterdir() if p.suffix in (".pem", ".key")}
