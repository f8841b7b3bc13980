# MQTT UTF-8 strings (§1.5.3) on this runtime (CPython or MicroPython):
#   <python> utf8_rules.py
# Decodes a PUBLISH whose topic holds each byte sequence and prints
# "<hex> ok <code points>" or "<hex> ProtocolError"; then encodes the
# well-formed ones again.
from mqtt import codec
from mqtt.errors import ProtocolError

CASES = (
    "612f62",          # ASCII
    "c3a9",            # U+00E9, two bytes
    "e282ac",          # U+20AC, three bytes
    "ed9fbf",          # U+D7FF, the last code point before the surrogates
    "ee8080",          # U+E000, the first after them
    "f09f9880",        # U+1F600, four bytes
    "f48fbfbf",        # U+10FFFF, the last code point
    "c080",            # overlong U+0000
    "c1bf",            # overlong U+007F
    "e08080",          # overlong, three bytes
    "f0808080",        # overlong, four bytes
    "eda080",          # surrogate U+D800
    "edbfbf",          # surrogate U+DFFF
    "f4908080",        # U+110000, past the last code point
    "f5808080",        # lead byte F5: past U+10FFFF
    "ff",              # never in UTF-8
    "80",              # a continuation byte alone
    "61e282",          # truncated three-byte sequence
    "f09f98",          # truncated four-byte sequence
    "c3c3",            # lead byte where a continuation belongs
)


def unhex(s):
    return bytes(int(s[i:i + 2], 16) for i in range(0, len(s), 2))


for case in CASES:
    t = unhex(case)
    pkt = bytes((0x30, 2 + len(t))) + len(t).to_bytes(2, "big") + t
    try:
        m = codec.decode(pkt[0], pkt[2:])
    except ProtocolError:
        print(case, "ProtocolError")
        continue
    back = codec.publish(m.topic, b"")
    print(case, "ok", " ".join("%x" % ord(c) for c in m.topic), bytes(back[4:]) == t)
