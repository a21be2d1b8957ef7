"""The Django admin of the result log (registered by ``options``)."""

from compute.admin import options  # noqa: F401 - registers ComputedResultAdmin
