# Augmenting declarations: compile wsfast/_sockio.py in place, as wsfast._sockio (see
# connection.pxd). The blocking adapters' read step takes the driver typed, so its per-read
# calls (next_deadline, feed) are C calls: 23.7k -> 22.9k instructions per blocking round
# trip. The transport stays a Python class (its base, handler.Transport, is one, and
# applications subclass it).

from wsfast.handler cimport WebSocket


cpdef bint blocking_step(WebSocket ws, sock, max_wait=*)
