# Prints firmware/ota.hmac_sha256 in hex for each [key hex, message hex] in the JSON file
# given, so tests/test_ota.py checks it against RFC 4231 on every runtime. (A file, not
# arguments: the unix port dies with "FATAL: uncaught NLR" on a 262-character argument.)
import json
import sys
from binascii import hexlify, unhexlify

from ota import hmac_sha256

with open(sys.argv[1]) as f:
    for key, msg in json.loads(f.read()):
        print(hexlify(hmac_sha256(unhexlify(key), unhexlify(msg))).decode())
