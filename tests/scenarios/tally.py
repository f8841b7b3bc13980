# Sequence bookkeeping shared by the soak and flood scenarios (both runtimes).


class Tally:
    """Sequence bookkeeping per topic without keeping the messages."""

    def __init__(self, n):
        self.seen = bytearray((n + 7) // 8)  # one bit per message
        self.distinct = 0
        self.dups = 0
        self.disorder = 0   # a first arrival with a lower number than an earlier one
        self.last = -1

    def add(self, i):
        bit = 1 << (i & 7)
        if self.seen[i >> 3] & bit:
            self.dups += 1
            return
        self.seen[i >> 3] |= bit
        self.distinct += 1
        if i < self.last:
            self.disorder += 1
        self.last = i
