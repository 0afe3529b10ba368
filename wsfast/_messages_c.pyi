# Types of wsfast._messages_c: wsfast/_messages.py compiled by Cython (see _messages_c.pxd).
from ._messages import BinaryMessage as BinaryMessage
from ._messages import Event as Event
from ._messages import Ping as Ping
from ._messages import Pong as Pong
from ._messages import TextMessage as TextMessage
