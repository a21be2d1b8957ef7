"""The test settings with a third, test-only kind registered (``tests.kinds.square``).

Only ``tests/kinds`` runs under these, in a pytest process of its own
(``tests/test_kinds_process.py`` starts it), because the URLconf and the
routes are built from the registry when a process starts.
"""

from tests.settings import *  # noqa: F403
from tests.settings import RESULT_KINDS

RESULT_KINDS = [*RESULT_KINDS, "tests.kinds.square.KIND"]
SQUARE_MAX_N = 10**9
