"""XOR masking of WebSocket payloads (RFC 6455 §5.3), pure Python.

Twin of the compiled ``wsfast._mask`` (same API, messages and results; parity test:
``tests/test_speedups.py``). See ``wsfast._speedups`` for the API contract.

Two techniques, each the fastest pure-Python one in its range (measured on CPython 3.11):

* short payloads: one big-integer XOR, ``int.from_bytes(data) ^ int.from_bytes(key * k)``;
* long payloads (from ``_TRANSLATE_MIN`` bytes): every 4th byte is XORed with the same key
  byte, so four strided slices each go through ``bytes.translate`` with a 256-byte XOR
  table; about 3x faster than the integer XOR on 64 KiB and up.
"""

from __future__ import annotations

__all__ = ["apply_mask", "apply_mask_inplace"]

# Crossover between the two techniques, measured.
_TRANSLATE_MIN = 512

# _XOR_TABLES[k] maps each byte b to b ^ k.
_XOR_TABLES = [bytes(b ^ k for b in range(256)) for k in range(256)]


def _view(obj: object, name: str, writable: bool = False) -> memoryview:
    """A flat unsigned-byte view of ``obj`` with the compiled build's error messages."""
    try:
        view = memoryview(obj)  # type: ignore[arg-type]
    except TypeError:
        view = None
    if view is None or not view.c_contiguous or (writable and view.readonly):
        kind = "writable, C-contiguous" if writable else "C-contiguous"
        raise TypeError(f"{name} must be a {kind} bytes-like object, not {type(obj).__name__!r}")
    if view.format != "B" or view.ndim != 1:
        view = view.cast("B")
    return view


def _key(mask: object, phase: object) -> bytes:
    """The mask rotated so that its first byte applies to the first data byte."""
    # Checked in the compiled build's order: phase, then mask (then the data).
    if not isinstance(phase, int):
        raise TypeError(f"phase must be an int, not {type(phase).__name__!r}")
    if not 0 <= phase <= 3:
        raise ValueError(f"phase must be 0, 1, 2 or 3, not {phase!r}")
    key = mask if type(mask) is bytes else _view(mask, "mask").tobytes()
    if len(key) != 4:
        raise ValueError(f"mask must be 4 bytes long, not {len(key)}")
    return key[phase:] + key[:phase]


def _xor(data: bytes | memoryview, key: bytes) -> bytes:
    n = len(data)
    if n < _TRANSLATE_MIN:
        if n == 0:
            return b""
        keys = (key * (n // 4 + 1))[:n]
        return (int.from_bytes(data, "little") ^ int.from_bytes(keys, "little")).to_bytes(
            n, "little"
        )
    out = bytearray(data)
    for i in range(4):
        out[i::4] = out[i::4].translate(_XOR_TABLES[key[i]])
    return bytes(out)


def apply_mask(data: object, mask: object, phase: int = 0) -> bytes:
    """Return ``data`` XORed with the 4-byte ``mask``, starting at key byte ``phase``.

    Args:
        data: any C-contiguous buffer (``bytes``, ``bytearray``, ``memoryview``...).
        mask: the 4-byte masking key (RFC 6455 §5.3), any C-contiguous buffer.
        phase: key index of ``data[0]`` (0-3): the number of payload bytes already
            unmasked, modulo 4.

    Returns:
        A new ``bytes`` object of the same length.

    Raises:
        TypeError: an argument has the wrong type.
        ValueError: ``mask`` is not 4 bytes long or ``phase`` is not 0-3.
    """
    key = _key(mask, phase)
    if type(data) is not bytes:
        data = _view(data, "data")
    return _xor(data, key)


def apply_mask_inplace(buf: object, mask: object, phase: int = 0) -> None:
    """XOR the writable buffer ``buf`` in place with ``mask``, starting at key byte ``phase``.

    Args:
        buf: a writable C-contiguous buffer (``bytearray``, writable ``memoryview``...).
        mask: the 4-byte masking key (RFC 6455 §5.3), any C-contiguous buffer.
        phase: key index of ``buf[0]`` (0-3).

    Raises:
        TypeError: an argument has the wrong type or ``buf`` is read-only.
        ValueError: ``mask`` is not 4 bytes long or ``phase`` is not 0-3.
    """
    key = _key(mask, phase)
    view = _view(buf, "buf", writable=True)
    view[:] = _xor(view, key)
