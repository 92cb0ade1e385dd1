"""Test helpers: imported as ``tests.helpers.<module>`` (never ``from conftest import``)."""
