#!/usr/bin/env python3
"""CTest's entry to the Python client's tests: exit 77 (skipped) when numpy or pytest is
missing, else pytest's own exit status.  $HYBRIDD_BIN names the daemon to test against."""
import importlib.util
import os
import sys

missing = [m for m in ("numpy", "pytest") if importlib.util.find_spec(m) is None]
if missing:
    print("skipped: %s cannot import %s (install python3-numpy python3-pytest)"
          % (sys.executable, " and ".join(missing)))
    sys.exit(77)

import pytest  # noqa: E402

here = os.path.dirname(os.path.abspath(__file__))
# No .pytest_cache in the source tree; -rs lists why anything was skipped.
sys.exit(pytest.main([here, "-q", "-rs", "-p", "no:cacheprovider"] + sys.argv[1:]))
