# Type stubs for the compiled wsfast._utf8 (twin: wsfast._utf8_py).
from typing import final

from _typeshed import ReadableBuffer

__all__ = ["Utf8Validator"]

@final
class Utf8Validator:
    def __init__(self) -> None: ...
    def feed(self, data: ReadableBuffer) -> int: ...
    @property
    def complete(self) -> bool: ...
    def reset(self) -> None: ...
