"""The caller tests name when they ask the service to set results up.

A system caller (``compute.admission.System``): charged to no client's
budget, so a test's setup never spends what the test then measures.
"""

from __future__ import annotations

from compute.admission import System

SETUP = System("tests")
