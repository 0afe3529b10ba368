# Type stubs for the compiled wsfast._inflate_ng: wsfast/_inflate.pyx built against zlib-ng
# (see wsfast/_zapi.h); the same API as wsfast._inflate.
from typing import final

from _typeshed import ReadableBuffer

__all__ = ["Inflater", "Deflater", "BACKEND", "LIBRARY_VERSION"]

BACKEND: str
LIBRARY_VERSION: str

@final
class Inflater:
    def __init__(self, wbits: int = 15) -> None: ...
    def decompress(self, data: ReadableBuffer, max_length: int) -> bytes: ...
    def finish(self, max_length: int) -> bytes: ...
    def reset(self) -> None: ...

@final
class Deflater:
    def __init__(self, level: int = 6, wbits: int = 15, mem_level: int = 8) -> None: ...
    def compress(self, data: ReadableBuffer, final: bool) -> bytes: ...
