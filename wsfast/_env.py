"""Read once which build the process asked for (no other imports: anything may import it).

``WSFAST_NO_EXTENSIONS=1`` forces the pure-Python twins; ``WSFAST_REQUIRE_EXTENSIONS=1``
turns a missing compiled module into an ImportError.
"""

import os

NO_EXTENSIONS = os.environ.get("WSFAST_NO_EXTENSIONS", "") not in ("", "0")
REQUIRE_EXTENSIONS = os.environ.get("WSFAST_REQUIRE_EXTENSIONS", "") not in ("", "0")

if NO_EXTENSIONS and REQUIRE_EXTENSIONS:  # pragma: no cover  (tested in a subprocess)
    raise ImportError("WSFAST_NO_EXTENSIONS and WSFAST_REQUIRE_EXTENSIONS are both set")
