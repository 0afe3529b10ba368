# Type stubs for the compiled wsfast._mask (twin: wsfast._mask_py).
from _typeshed import ReadableBuffer, WriteableBuffer

__all__ = ["apply_mask", "apply_mask_inplace"]

def apply_mask(data: ReadableBuffer, mask: ReadableBuffer, phase: int = 0) -> bytes: ...
def apply_mask_inplace(buf: WriteableBuffer, mask: ReadableBuffer, phase: int = 0) -> None: ...
