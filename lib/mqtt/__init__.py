# mqnode's MQTT client: one asyncio source for MicroPython and CPython.
from .client import MQTTClient
from .codec import Message
from .errors import MQTTError, ProtocolError, ConnectRefused, NotConnected, ConnectionLost
