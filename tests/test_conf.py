"""The settings gateway (``compute.conf``): values read at use, and the generation of settings."""

from __future__ import annotations

from django.test import override_settings

from compute.conf import app_settings


def test_every_setting_change_moves_the_generation_on(settings):
    before = app_settings.generation
    settings.FIB_MAX_N = 50  # a limit
    after_limit = app_settings.generation
    settings.ALLOWED_HOSTS = ["example.com"]  # not a limit: a change all the same
    after_hosts = app_settings.generation
    assert before < after_limit < after_hosts
    assert app_settings.limits.fib_max_n == 50


def test_restoring_a_setting_is_a_change_too():
    before = app_settings.generation
    with override_settings(PI_MAX_DIGITS=7):
        inside = app_settings.generation
        assert app_settings.limits.pi_max_digits == 7
    assert before < inside < app_settings.generation  # never back to a past generation


def test_forgetting_kept_values_keeps_the_generation():
    app_settings.limits  # noqa: B018 - kept now
    generation = app_settings.generation
    app_settings.forget()
    assert app_settings.generation == generation
