#!/usr/bin/env python3
"""The host's end of the emulated board's PPP link, in user space, onto a TUN interface.

    ip netns exec NS python ppp_peer.py --tty UART0_PTY --local 10.77.0.1 --remote 10.77.0.2

Why not pppd: pppd needs the kernel's PPP driver (/dev/ppp), and this machine's kernel has
none (CONFIG_PPP is not set: opening a 108:0 node gives ENXIO, pppd says "Couldn't open the
/dev/ppp device"). TUN is there, so this does pppd's part for one link: HDLC-like framing
(RFC 1662), LCP (RFC 1661) and IPCP (RFC 1332), then IP packets between the link and a TUN
interface that has the local address, in the network namespace it runs in. The board's side
is the real one: MicroPython's network.PPP on lwIP.

What it negotiates: it acknowledges the board's LCP options (MRU, ACCM, magic number,
protocol and address/control field compression: all are things this end can receive) and
rejects authentication (none here); its own LCP request has no options. IPCP: the board
gets --remote (a Configure-Nak of its 0.0.0.0), DNS and VJ compression are rejected; its
own IPCP request is IP-Address --local. Anything but LCP, IPCP and IP gets a
Protocol-Reject. It always sends with full headers and every control character escaped,
which any peer must accept. Like pppd's `silent` option it sends nothing until the board's
first LCP packet (requests sent to a board that is not listening yet would pile up in its
UART and, answered late, restart the link); a Configure-Ack of any copy of our current
request counts (the copies are the same request). Runs until SIGTERM; prints "ppp: up"
when IP is open.
"""

import argparse
import fcntl
import os
import select
import signal
import struct
import subprocess
import sys
import termios
import time
import tty

FLAG, ESC = 0x7E, 0x7D
LCP, IPCP, IP = 0xC021, 0x8021, 0x0021
CONF_REQ, CONF_ACK, CONF_NAK, CONF_REJ, TERM_REQ, TERM_ACK = 1, 2, 3, 4, 5, 6
PROTO_REJ, ECHO_REQ, ECHO_REP, DISCARD = 8, 9, 10, 11
LCP_OK = {1, 2, 5, 7, 8}         # MRU, ACCM, magic number, PFC, ACFC
IPCP_ADDRESS = 3
RESEND_S = 3.0                   # Configure-Request restart timer (RFC 1661 §4.6)
TUNSETIFF, IFF_TUN, IFF_NO_PI = 0x400454CA, 0x0001, 0x1000
MAX_FRAME = 4096


def fcs16(data):
    """The frame check sequence of RFC 1662 §C.2 (CRC-16/X.25)."""
    fcs = 0xFFFF
    for b in data:
        fcs ^= b
        for _ in range(8):
            fcs = (fcs >> 1) ^ 0x8408 if fcs & 1 else fcs >> 1
    return fcs


def frame(proto, payload):
    """One HDLC-like frame (RFC 1662 §3, §4.2): flag, FF 03, protocol, payload, FCS, flag;
    0x7E, 0x7D and every byte below 0x20 escaped."""
    body = bytes((0xFF, 0x03)) + struct.pack(">H", proto) + payload
    fcs = fcs16(body) ^ 0xFFFF
    body += bytes((fcs & 0xFF, fcs >> 8))
    out = bytearray((FLAG,))
    for b in body:
        if b in (FLAG, ESC) or b < 0x20:
            out += bytes((ESC, b ^ 0x20))
        else:
            out.append(b)
    out.append(FLAG)
    return bytes(out)


def options(data):
    """[(type, value)] of a Configure packet's options; None if they are malformed."""
    out, i = [], 0
    while i < len(data):
        if i + 2 > len(data) or data[i + 1] < 2 or i + data[i + 1] > len(data):
            return None
        out.append((data[i], data[i + 2:i + data[i + 1]]))
        i += data[i + 1]
    return out


def encode(opts):
    return b"".join(bytes((t, len(v) + 2)) + v for t, v in opts)


class Peer:
    def __init__(self, tty_fd, tun_fd, local, remote, say):
        self.tty, self.tun = tty_fd, tun_fd
        self.local, self.remote = local, remote
        self.say = say
        self.ident = 0
        self.heard = False             # the board has sent LCP: it is listening
        self.rx = bytearray()          # bytes of the frame being received (unescaped)
        self.esc = False
        self.restart()

    def restart(self):
        # the link starts over: both Configure exchanges of LCP, then of IPCP
        self.lcp_ours = self.lcp_theirs = False
        self.ipcp_ours = self.ipcp_theirs = False
        self.next_req = 0.0
        self.sent = set()              # identifiers of the copies of our current request
        self.up = False

    def send(self, proto, payload):
        os.write(self.tty, frame(proto, payload))

    def control(self, proto, code, ident, data):
        self.send(proto, struct.pack(">BBH", code, ident, len(data) + 4) + data)

    def tick(self, now):
        """Send our Configure-Request until it is acknowledged (the restart timer)."""
        if now < self.next_req or not self.heard:
            return
        self.next_req = now + RESEND_S
        if not self.lcp_ours:
            proto, opts = LCP, b""
        elif self.lcp_theirs and not self.ipcp_ours:
            proto, opts = IPCP, encode([(IPCP_ADDRESS, self.local)])
        else:
            return
        self.ident = (self.ident + 1) & 0xFF
        self.sent.add((proto, self.ident))
        self.control(proto, CONF_REQ, self.ident, opts)

    def link_bytes(self, data):
        for b in data:
            if b == FLAG:
                if len(self.rx) >= 4 and fcs16(self.rx) == 0xF0B8:
                    self.packet(bytes(self.rx[:-2]))
                self.rx.clear()
                self.esc = False
            elif b == ESC:
                self.esc = True
            elif len(self.rx) < MAX_FRAME:
                self.rx.append(b ^ 0x20 if self.esc else b)
                self.esc = False

    def packet(self, f):
        if f[:2] == b"\xff\x03":       # address and control, unless compressed (ACFC)
            f = f[2:]
        if f and f[0] & 1:             # a one-byte protocol field (PFC)
            proto, data = f[0], f[1:]
        elif len(f) >= 2:
            proto, data = f[0] << 8 | f[1], f[2:]
        else:
            return
        if proto == IP:
            if self.up:
                os.write(self.tun, data)
        elif proto in (LCP, IPCP):
            if len(data) >= 4:
                code, ident, length = struct.unpack(">BBH", data[:4])
                if 4 <= length <= len(data):
                    self.negotiate(proto, code, ident, data[4:length])
        elif self.lcp_ours and self.lcp_theirs:
            self.control(LCP, PROTO_REJ, self.ident, struct.pack(">H", proto) + data)

    def negotiate(self, proto, code, ident, data):
        if proto == LCP and not self.heard:
            self.heard = True
            self.next_req = 0.0
        if code == CONF_REQ:
            opts = options(data)
            if opts is None:
                return
            if proto == LCP:
                if self.lcp_ours and self.lcp_theirs:
                    self.say("ppp: the board restarts LCP")
                    self.restart()
                bad = [(t, v) for t, v in opts if t not in LCP_OK]
                nak = []
            else:
                bad = [(t, v) for t, v in opts if t != IPCP_ADDRESS]
                nak = [(t, v) for t, v in opts if t == IPCP_ADDRESS and v != self.remote]
                nak = [(IPCP_ADDRESS, self.remote)] if nak else []
            if bad:
                self.control(proto, CONF_REJ, ident, encode(bad))
            elif nak:
                self.control(proto, CONF_NAK, ident, encode(nak))
            else:
                self.control(proto, CONF_ACK, ident, data)
                if proto == LCP:
                    self.lcp_theirs = True
                else:
                    self.ipcp_theirs = True
                self.next_req = 0.0
        elif code == CONF_ACK and (proto, ident) in self.sent:
            self.sent = set()
            if proto == LCP:
                self.lcp_ours = True
            else:
                self.ipcp_ours = True
            self.next_req = 0.0
        elif code in (CONF_NAK, CONF_REJ):
            self.say(f"ppp: the board refused our {'LCP' if proto == LCP else 'IPCP'} "
                     f"request (code {code}): {data.hex()}")
        elif code == TERM_REQ:
            self.control(proto, TERM_ACK, ident, b"")
            if proto == LCP:
                self.say("ppp: the board ended the link")
                self.restart()
        elif proto == LCP and code == ECHO_REQ and self.lcp_ours and self.lcp_theirs:
            self.control(LCP, ECHO_REP, ident, b"\0\0\0\0" + data[4:])
        if not self.up and self.ipcp_ours and self.ipcp_theirs:
            self.up = True
            self.say("ppp: up")

    def run(self, stop):
        while not stop[0]:
            self.tick(time.monotonic())
            r, _, _ = select.select([self.tty, self.tun], [], [], 0.2)
            if self.tty in r:
                try:
                    data = os.read(self.tty, 4096)
                except BlockingIOError:
                    data = b""
                self.link_bytes(data)
            if self.tun in r:
                pkt = os.read(self.tun, 65536)
                if self.up:
                    self.send(IP, pkt)


def open_tun(name):
    fd = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    return fd


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tty", required=True, help="the board's UART (a pty)")
    ap.add_argument("--local", required=True, help="this end's IPv4 address")
    ap.add_argument("--remote", required=True, help="the address the board gets")
    ap.add_argument("--tun", default="ppp0", help="name of the TUN interface to make")
    args = ap.parse_args(argv)

    def say(text):
        print(text, flush=True)

    tty_fd = os.open(args.tty, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    tty.setraw(tty_fd)
    termios.tcflush(tty_fd, termios.TCIOFLUSH)
    tun_fd = open_tun(args.tun)
    for cmd in (["ip", "addr", "add", args.local, "peer", args.remote, "dev", args.tun],
                ["ip", "link", "set", args.tun, "up"]):
        subprocess.run(cmd, check=True)
    stop = [False]
    signal.signal(signal.SIGTERM, lambda *_: stop.__setitem__(0, True))
    say(f"ppp: waiting on {args.tty}, {args.tun} {args.local} <-> {args.remote}")
    Peer(tty_fd, tun_fd, bytes(map(int, args.local.split("."))),
         bytes(map(int, args.remote.split("."))), say).run(stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
