# mqnode's MQTT client: one asyncio source for MicroPython and CPython.
# The one version of mqnode (semantic versioning): the packages, the build stamp, the
# host tool and the node's status all report this; tests/test_packages.py keeps them equal.
__version__ = "0.9.0"
from .client import MQTTClient
from .codec import Message
from .errors import MQTTError, ProtocolError, ConnectRefused, NotConnected, ConnectionLost
