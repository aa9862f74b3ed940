"""The fixtures every test may ask for by name; they are defined in tests/support, by concern.

Helpers in tests/support assert too: pytest rewrites their asserts, as it does a test module's, so
that a failing one shows its values.
"""

import pytest

pytest.register_assert_rewrite("tests.support")

# Imported here so that pytest finds them: a test names the fixture, never imports it.
from tests.support.browser import browser  # noqa: E402, F401
from tests.support.ports import ports  # noqa: E402, F401
from tests.support.stages import run_config, start_stage  # noqa: E402, F401
