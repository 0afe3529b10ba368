# Augmenting declarations: compile wsfast/_sockio.py in place, as wsfast._sockio (see
# connection.pxd). The blocking adapters' read step takes the driver typed, so its per-read
# calls (next_deadline, feed) are C calls: about 1k fewer instructions per blocking round
# trip (22.1k in all, from 38.3k before any of this was compiled). The transport stays a Python class (its base, handler.Transport, is one, and
# applications subclass it).

from wsfast.handler cimport WebSocket


cpdef bint blocking_step(WebSocket ws, sock, max_wait=*)
