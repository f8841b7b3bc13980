# TLS cases for tests/test_tls.py, on CPython and MicroPython:
#   <python> tls_client.py CASE PORT DIR [HOST [SERVER_HOSTNAME]]
# DIR holds the PKI from tests/pki.py. Prints "up", "refused <code>", or
# "failed <ExceptionType>"; never a password or key.
import sys
import asyncio

from mqtt import MQTTClient, ConnectRefused
from mqtt.tls import TLS

CASE, PORT, DIR = sys.argv[1], int(sys.argv[2]), sys.argv[3]
HOST = sys.argv[4] if len(sys.argv) > 4 else "localhost"
NAME = sys.argv[5] if len(sys.argv) > 5 else None   # the name to check, if not HOST
PASSWORD = "tls-pw-0d5a"   # what mosquitto's password file has for "node"
KEY_PASSWORD = b"key-pw-41c7"   # tests/pki.py's client-enc.key
logs = []


def read(name):
    with open(DIR + "/" + name, "rb") as f:
        return f.read()


def tls():
    if CASE == "no-ca":
        return TLS()
    if CASE == "insecure":
        return TLS(insecure=True)
    if CASE in ("bundle", "ca-text"):        # bytes, then the path: both must work
        TLS(read(CASE + ".pem"))
        return TLS(DIR + "/" + CASE + ".pem")
    if CASE == "bundle-der":
        return TLS(read("bundle.der"))
    if CASE == "other-ca":
        return TLS(read("other-ca.pem"))
    if CASE == "alpn":
        return TLS(read("ca.pem"), alpn=["mqtt"])
    ca = read("ca.pem") if CASE != "ca-path" else DIR + "/ca.pem"
    if CASE == "mutual":
        return TLS(ca, cert=read("client.pem"), key=read("client.key"))
    if CASE == "key-password":
        return TLS(ca, cert=read("client.pem"), key=read("client-enc.key"),
                   key_password=KEY_PASSWORD)
    return TLS(ca, server_hostname=NAME)


async def main():
    try:
        t = tls() if CASE != "plain" else None
    except ValueError as e:
        print("error", e)
        return
    password = "wrong-" + PASSWORD if CASE == "bad-password" else PASSWORD
    c = MQTTClient(HOST, PORT, "tls-" + CASE, keepalive=30, username="node", password=password,
                   tls=t, connect_timeout=3, backoff=(0.3, 1), log=logs.append)
    print("repr", repr(c), repr(t))
    try:
        await c.connect(timeout=4)
        print("up")
        topic = "private/x" if CASE == "acl" else "nodes/node/x"
        print("granted", await c.subscribe(topic, 1, timeout=5))
        await c.publish("nodes/node/x", b"over tls", 1, timeout=5)
        await c.flush(timeout=5)
        print("flushed")
    except ConnectRefused as e:
        print("refused", e.code)
        await asyncio.sleep(2)            # the client keeps retrying, with backoff
    except asyncio.TimeoutError as e:
        # the timeout carries the cause: the last attempt's error (here the TLS one)
        cause = e.args[0] if e.args else None
        print("failed", type(cause).__name__, str(cause).replace("\n", " "))
    finally:
        await c.disconnect()
    for line in logs:
        print("log", line)


asyncio.run(main())
