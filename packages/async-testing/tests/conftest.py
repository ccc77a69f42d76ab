"""Helpers for django_aio.testing's own tests (Django is configured by the root conftest)."""

from __future__ import annotations

import unittest


def run_case(case_class: type[unittest.TestCase]) -> unittest.TestResult:
    """Run a test class defined inside a test, as unittest's runner would."""
    result = unittest.TestResult()
    unittest.TestLoader().loadTestsFromTestCase(case_class).run(result)
    return result


def failure_messages(result: unittest.TestResult) -> list[str]:
    return [text for _, text in [*result.failures, *result.errors]]
