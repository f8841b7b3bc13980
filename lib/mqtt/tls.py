# TLS settings for MQTTClient(tls=...), verified by default, on CPython (ssl)
# and MicroPython (ssl over tls/mbedTLS). Loaded only by clients that use TLS.
import ssl

_CPYTHON = hasattr(ssl, "create_default_context")


class TLS:
    """How to secure the link to the broker.

    ca: the CA certificate(s) that signed the broker's certificate: a file
      path, or the PEM/DER bytes (on a board, read from its filesystem). The
      broker's certificate is checked against it, and its name against
      server_hostname (default: the host given to MQTTClient).
    cert, key: a client certificate and its private key, for brokers that
      require one (mutual TLS): paths, or bytes on MicroPython.
    insecure=True: no verification at all; anyone on the path can read and
      change the traffic. Only ever explicit: TLS without a CA is an error.

    Never shows the key: repr() lists what is set, not what it is."""

    def __init__(self, ca=None, cert=None, key=None, server_hostname=None, insecure=False):
        if ca is None and not insecure:
            raise ValueError("TLS needs the broker's CA (ca=...); pass insecure=True to skip "
                             "verification knowingly")
        if (cert is None) != (key is None):
            raise ValueError("a client certificate needs its key, and a key its certificate")
        self.server_hostname = server_hostname
        self.insecure = insecure
        self.context = _context(ca, cert, key, insecure)

    def __repr__(self):
        return "TLS(%s)" % ("insecure" if self.insecure else "verified")


def _context(ca, cert, key, insecure):
    if _CPYTHON:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        if insecure:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        elif isinstance(ca, (bytes, bytearray)):
            # DER bytes, or PEM text (cadata takes PEM as str)
            ctx.load_verify_locations(cadata=bytes(ca) if ca[:1] == b"0" else ca.decode())
        else:
            ctx.load_verify_locations(cafile=ca)
        if cert is not None:
            if isinstance(cert, str):
                ctx.load_cert_chain(cert, key)
            else:
                _load_chain_bytes(ctx, cert, key)
        return ctx
    # MicroPython: mbedTLS speaks TLS 1.2 (and 1.3 where built in), never older.
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if insecure:
        ctx.verify_mode = ssl.CERT_NONE
    else:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(cadata=_read(ca))
    if cert is not None:
        ctx.load_cert_chain(_read(cert), _read(key))
    return ctx


def _load_chain_bytes(ctx, cert, key):
    # CPython's ssl loads a certificate and key from files only: a private
    # temporary folder, emptied at once.
    import os
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        paths = []
        for name, data in (("cert.pem", cert), ("key.pem", key)):
            p = os.path.join(d, name)
            fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(bytes(data))
            paths.append(p)
        ctx.load_cert_chain(*paths)


def _read(x):
    # A path or the bytes; PEM becomes DER, which every mbedTLS build parses
    # (the unix port's is built without PEM support).
    if isinstance(x, str):
        with open(x, "rb") as f:
            x = f.read()
    x = bytes(x)
    if x[:5] != b"-----":
        return x
    from binascii import a2b_base64
    return a2b_base64(b"".join(line for line in x.splitlines() if line[:5] != b"-----"))
