"""Test-session setup: no network, and no writes into the user's Hugging Face caches.

This runs before any test module imports transformers, datasets or evaluate, which read these variables at import
time (transformers also puts HF_MODULES_CACHE on sys.path once per process).
"""

from __future__ import annotations

import os
import tempfile

_SESSION_HOME = tempfile.mkdtemp(prefix="las-tests-hf-home-")
os.environ["HF_HOME"] = _SESSION_HOME
os.environ["HF_MODULES_CACHE"] = os.path.join(_SESSION_HOME, "modules")
os.environ["HF_DATASETS_CACHE"] = os.path.join(_SESSION_HOME, "datasets")
os.environ["HF_HUB_OFFLINE"] = "1"  # the loopback-hub tests lift this for themselves (hub_server.hub_env)
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

# The loopback Hub's `loopback_hub` fixture, for every test module (pytest imports plugins after this module has run,
# so the variables above are set first).
pytest_plugins = ["tests.support.hub_server"]
