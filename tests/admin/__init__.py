"""Tests of the result-log admin (``compute.admin``) and the admin site."""
