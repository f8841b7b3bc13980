# Well-formed UTF-8 (MQTT 3.1.1 and 5.0 §1.5.3, [MQTT-1.5.3-1]; the byte
# ranges are Unicode's Table 3-7). MicroPython's str() accepts overlong forms
# (C0 80), surrogates (ED A0 80) and code points past U+10FFFF, so the codec
# checks here, on every runtime. Loaded only for a string with a byte >= 0x80:
# pure ASCII never pays for this loop.


def check(b):
    """Raise ValueError unless b is well-formed UTF-8."""
    i = 0
    n = len(b)
    while i < n:
        c = b[i]
        if c < 0x80:
            i += 1
            continue
        # lead byte: how many continuation bytes, and the allowed range of
        # the first one (which excludes overlong forms, surrogates, > U+10FFFF)
        if 0xC2 <= c <= 0xDF:
            k, lo, hi = 1, 0x80, 0xBF
        elif 0xE0 <= c <= 0xEF:
            k, lo, hi = 2, 0xA0 if c == 0xE0 else 0x80, 0x9F if c == 0xED else 0xBF
        elif 0xF0 <= c <= 0xF4:
            k, lo, hi = 3, 0x90 if c == 0xF0 else 0x80, 0x8F if c == 0xF4 else 0xBF
        else:
            raise ValueError("invalid UTF-8 lead byte 0x%02x" % c)
        if i + k >= n:
            raise ValueError("truncated UTF-8 sequence")
        if not lo <= b[i + 1] <= hi:
            raise ValueError("overlong, surrogate or out-of-range UTF-8 at byte %d" % i)
        for j in range(i + 2, i + k + 1):
            if not 0x80 <= b[j] <= 0xBF:
                raise ValueError("invalid UTF-8 continuation at byte %d" % j)
        i += k + 1
