# Types of wsfast/_parser.py, which Cython also compiles as wsfast._parser_c (its C types are in
# _parser_c.pxd). A stub rather than annotations in the source: Cython reads annotations of a
# compiled .py as C types (``data: bytes`` would refuse a bytearray), and the two must not drift.
from typing import Callable, List, Optional

from .events import Event
from .extensions import Extension

FRAME: int
PAYLOAD: int
DISCARD: int
OP_CONT: int
OP_TEXT: int
OP_BINARY: int
OP_CLOSE: int
OP_PING: int
OP_PONG: int
EVENT_OVERHEAD: int
MIN_BUDGET: int
READ_SIZE: int
REGION_MIN: int
PREALLOC_MAX: int

class Parser:
    events: List[Event]
    mask_expected: int
    max_message_size: int
    max_frame_size: int
    max_transformed_frame_size: int
    stream_fragments: bool
    on_ping: Callable[[bytes], None]
    on_close: Callable[[bytes], None]
    pending: int
    budget: int
    held: Optional[bytes]
    held_pos: int
    state: int
    rsv_allowed: int
    ext: Optional[Extension]
    buf: bytearray
    mopcode: int
    held_end: int
    rview: Optional[memoryview]
    def __init__(
        self,
        events: List[Event],
        mask_expected: int,
        max_message_size: int,
        max_frame_size: int,
        stream_fragments: bool,
        on_ping: Callable[[bytes], None],
        on_close: Callable[[bytes], None],
    ) -> None: ...
    def set_extension(self, ext: Optional[Extension]) -> None: ...
    def discard(self) -> None: ...
    def feed(self, data: bytes) -> None: ...
    def get_region(self) -> Optional[memoryview]: ...
    def get_buffer(self, sizehint: int) -> memoryview: ...
    def buffer_updated(self, nbytes: int) -> None: ...
    def resume(self) -> None: ...
