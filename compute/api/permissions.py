"""Who may delete a result through the API: staff holding the model's "delete" permission.

DELETE removes a result from every cache tier *and* its row from the log,
which is what the admin's delete does; the admin asks for
``compute.delete_computedresult`` there, so the API asks for the same (a
staff member the admin lets only view results cannot delete them with a
token either). Superusers have every permission. Non-staff are refused
whatever permissions they hold, as before: the API is for staff.
"""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from compute.models import ComputedResult

DELETE_PERMISSION = f"{ComputedResult._meta.app_label}.delete_{ComputedResult._meta.model_name}"


class CanDeleteResults(BasePermission):
    """Allow staff users with ``compute.delete_computedresult``; 401/403 otherwise."""

    message = "Deleting results needs a staff user with the 'delete computed result' permission."

    def has_permission(self, request: Request, view: Any) -> bool:
        """Return True if the caller is active staff holding the delete permission."""
        user = request.user
        return bool(user and user.is_staff and user.has_perm(DELETE_PERMISSION))
