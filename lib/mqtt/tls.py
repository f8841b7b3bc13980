# TLS settings for MQTTClient(tls=...), verified by default, on CPython (ssl)
# and MicroPython (ssl over tls/mbedTLS). Loaded only by clients that use TLS.
import ssl

_CPYTHON = hasattr(ssl, "create_default_context")


class TLS:
    """How to secure the link to the broker.

    ca: the CA certificate(s) that signed the broker's certificate: a file
      path, or the PEM/DER bytes (on a board, read from its filesystem); PEM
      may hold several certificates (a bundle) and text around them (as
      `openssl ca` writes). The broker's certificate is checked against it,
      and its name against server_hostname (default: the host given to
      MQTTClient).
    cert, key: a client certificate and its private key, for brokers that
      require one (mutual TLS): paths, or bytes on MicroPython.
    key_password: decrypts an encrypted key (CPython only: MicroPython's
      SSLContext cannot, and says so).
    alpn: protocol names offered by ALPN, e.g. ["mqtt"] (where the runtime's
      SSLContext has set_alpn_protocols; else a ValueError says so).
    insecure=True: no verification at all; anyone on the path can read and
      change the traffic. Only ever explicit: TLS without a CA is an error.

    Never shows the key: repr() lists what is set, not what it is."""

    def __init__(self, ca=None, cert=None, key=None, server_hostname=None, insecure=False,
                 key_password=None, alpn=None):
        if ca is None and not insecure:
            raise ValueError("TLS needs the broker's CA (ca=...); pass insecure=True to skip "
                             "verification knowingly")
        if (cert is None) != (key is None):
            raise ValueError("a client certificate needs its key, and a key its certificate")
        self.server_hostname = server_hostname
        self.insecure = insecure
        self.context = ctx = _context(ca, cert, key, insecure, key_password)
        if alpn:
            if not hasattr(ctx, "set_alpn_protocols"):
                raise ValueError("ALPN: this runtime's SSLContext has no set_alpn_protocols")
            ctx.set_alpn_protocols(list(alpn))

    def __repr__(self):
        return "TLS(%s)" % ("insecure" if self.insecure else "verified")


def _context(ca, cert, key, insecure, password):
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
                ctx.load_cert_chain(cert, key, password)
            else:
                _load_chain_bytes(ctx, cert, key, password)
        return ctx
    # MicroPython: mbedTLS speaks TLS 1.2 (and 1.3 where built in), never older.
    if password is not None:
        raise ValueError("key_password: MicroPython's SSLContext cannot decrypt a key; "
                         "put the key on the board unencrypted")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if insecure:
        ctx.verify_mode = ssl.CERT_NONE
    else:
        ctx.verify_mode = ssl.CERT_REQUIRED
        # one certificate per call: mbedTLS adds each to the trusted chain
        for der in _ders(ca):
            ctx.load_verify_locations(cadata=der)
    if cert is not None:
        ctx.load_cert_chain(_ders(cert)[0], _ders(key)[0])
    return ctx


def _load_chain_bytes(ctx, cert, key, password):
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
        ctx.load_cert_chain(paths[0], paths[1], password)


def _der_split(x):
    # DER values end to end: each a SEQUENCE (0x30) with a short (< 0x80)
    # or long (0x81..0x84 + that many length bytes) length (X.690 §8.1.3).
    out = []
    i = 0
    while i < len(x):
        n = x[i + 1] if i + 1 < len(x) else 0
        h = 2
        if n & 0x80:
            h += n & 0x7F
            n = int.from_bytes(x[i + 2:i + h], "big")
        if x[i] != 0x30 or h > 6 or i + h + n > len(x):
            raise ValueError("not DER (nor PEM) data")
        out.append(x[i:i + h + n])
        i += h + n
    return out


def _ders(x):
    # A path or the bytes -> the DER blocks in it. PEM becomes DER, which
    # every mbedTLS build parses (the unix port's is built without PEM):
    # each -----BEGIN ... -----END block, ignoring text around them, as
    # OpenSSL does (`openssl ca` writes a text dump first; bundles hold
    # several certificates). DER may be several certificates end to end
    # too (as CPython's cadata takes them), while mbedTLS reads one.
    if isinstance(x, str):
        with open(x, "rb") as f:
            x = f.read()
    x = bytes(x)
    i = x.find(b"-----BEGIN ")
    if i < 0:
        return _der_split(x)
    from binascii import a2b_base64
    out = []
    while i >= 0:
        j = x.find(b"-----END ", i)
        if j < 0:
            raise ValueError("PEM block without its -----END line")
        lines = x[i:j].split(b"\n")
        # an encrypted key: a "...ENCRYPTED..." label or Proc-Type/DEK-Info headers
        if b"ENCRYPTED" in lines[0] or [ln for ln in lines[1:] if b":" in ln]:
            raise ValueError("encrypted PEM key: MicroPython's SSLContext cannot decrypt it")
        out.append(a2b_base64(b"".join(ln.strip() for ln in lines[1:])))
        i = x.find(b"-----BEGIN ", j)
    return out
