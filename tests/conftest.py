"""Session-wide test setup: a private cache directory and network LM calls switched off.

Both must happen before lmprog is imported: settings.py reads LMPROG_ALLOW_NETWORK at import.
"""

from __future__ import annotations

import os
import tempfile

os.environ["LMPROG_CACHE_DIR"] = tempfile.mkdtemp(prefix="lmprog-test-cache-")
os.environ["LMPROG_ALLOW_NETWORK"] = "0"
