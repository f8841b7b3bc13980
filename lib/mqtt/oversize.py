# A packet from the broker bigger than max_packet. Any but a PUBLISH closes
# the link. A PUBLISH (a "poison" message, e.g. a retained one: closing the
# link would get it re-sent on every reconnect, forever) is read and thrown
# away as it arrives, never held; only its packet id is kept, so it can be
# acknowledged as its QoS requires (§4.3.2, §4.3.3) and the broker does not
# send it again. It is counted in Session.oversized and reported as the
# event (0, text), which the client passes to its log hook. Loaded only when
# such a packet comes.
from .codec import PUBACK, PUBREC, ack
from .errors import ProtocolError


def skip(session, buf, i, f, now):
    # The fixed header of the packet at buf[i] is in: f is (body start,
    # end) from codec.frame. Returns the events of the bytes after it.
    size = f[1] - i
    if buf[i] >> 4 != 3:
        raise ProtocolError("packet of %d bytes over the %d limit" % (size, session.limit))
    s = Skip(session, buf[i], f[1] - f[0], size)
    rest = bytes(buf[f[0]:])
    buf[:] = b""
    # Until the packet has gone by, session.feed is s.feed (an instance
    # attribute over the method): the common path pays nothing for this.
    session.feed = s.feed
    return s.feed(rest, now)


class Skip:
    """The rest of one oversized PUBLISH: b0 its first byte, n its body
    length, size its length in all."""

    def __init__(self, session, b0, n, size):
        self.qos = b0 >> 1 & 3
        if self.qos == 3:
            raise ProtocolError("PUBLISH with QoS 3 (§3.3.1.2)")
        self.session = session
        self.buf = session._buf   # a new connection gets a new one (Session.start)
        self.size = size
        self.n = self.body = n
        self.head = bytearray()   # body bytes 0-1 (topic length), then the packet id

    def feed(self, data, now):
        # Session.feed while skipping: discard what data holds of the packet;
        # once it has ended, acknowledge it and go on with what follows.
        session = self.session
        if session._buf is not self.buf:   # the link was made again: done
            del session.feed
            return session.feed(data, now)
        k = min(len(data), self.n)
        h = self.head
        done = self.body - self.n          # body bytes already gone
        while len(h) < (4 if self.qos else 2):
            # the next byte we keep: topic length (0, 1), then the packet id
            off = len(h) if len(h) < 2 else (h[0] << 8 | h[1]) + len(h)
            if off >= done + k:
                break
            h.append(data[off - done])
        self.n -= k
        if self.n:
            return []
        del session.feed
        # a whole packet: the link is alive (§3.1.2.10)
        session._last_rx = now
        session._ping = None
        pid = 0
        if self.qos:
            if len(h) < 4:
                raise ProtocolError("topic length beyond the packet")
            pid = h[2] << 8 | h[3]
            if not pid:
                raise ProtocolError("packet id 0")
            if self.qos == 1:
                session.tx.append(ack(PUBACK, pid))
            else:
                session._rx[pid] = True   # the PUBREL that follows gets its PUBCOMP
                session.tx.append(ack(PUBREC, pid))
        session.oversized += 1
        return [(0, "skipped a PUBLISH of %d bytes over max_packet (QoS %d, acknowledged)"
                 % (self.size, self.qos))] + session.feed(data[k:], now)
