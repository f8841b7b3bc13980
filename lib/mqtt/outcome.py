# Per-message outcomes of QoS 1/2 publishes: what flush() raises when some
# were not delivered. Loaded on demand (by the first such flush()), so the
# core stays small.
from .errors import MQTTError
from .session import DROPPED, UNKNOWN  # noqa: F401  (the codes, for the application)


class Undelivered(MQTTError):
    """flush(): QoS 1/2 publishes were not delivered. .failed: [(pid, code)],
    code an MQTT 5 reason code >= 0x80 (the broker refused it), UNKNOWN (the
    broker lost the session after PUBREC: maybe delivered, maybe not) or
    DROPPED (dropped from the full queue, or expired before it was sent)."""

    def __init__(self, failed):
        super().__init__(failed)
        self.failed = failed
