"""The compute app: pi and fib results, their cache and their log."""

from django.apps import AppConfig


class ComputeConfig(AppConfig):
    """App config for compute."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "compute"
    # The admin's breadcrumb reads "Home > Result log > Computed results", not the
    # model's name twice.
    verbose_name = "Result log"

    def ready(self) -> None:
        from compute.domain import maths as algorithms

        algorithms.prepare()  # at worker start, not in the first request
