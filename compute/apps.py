"""The compute app: results of the registered kinds (pi, fib), their cache and their log."""

from django.apps import AppConfig


class ComputeConfig(AppConfig):
    """App config for compute."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "compute"
    # The admin's breadcrumb reads "Home > Result log > Computed results", not the
    # model's name twice.
    verbose_name = "Result log"

    def ready(self) -> None:
        from django.conf import settings

        from compute.domain import maths as algorithms
        from compute.domain.kinds import registry

        # The kinds of result this deployment serves (one line per kind).
        registry.load(settings.RESULT_KINDS)
        algorithms.prepare()  # at worker start, not in the first request
