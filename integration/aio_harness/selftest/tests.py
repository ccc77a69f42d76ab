"""Known outcomes, for ``run.py --self-test``: proves the report reads them right.

run.py passes ``aio_harness.selftest`` to runtests.py as a test label
(integration/ is on the path), and compares the failing ids and the counts
with ``expected.EXPECTED``.
"""

import os
import threading
import unittest

from django.contrib.auth.models import User
from django.db import connections
from django.test import SimpleTestCase, TestCase


class SetUpClassError(SimpleTestCase):
    @classmethod
    def setUpClass(cls):
        raise RuntimeError("setUpClass fails on purpose")

    def test_never_runs(self):
        pass


class TearDownClassError(SimpleTestCase):
    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        raise RuntimeError("tearDownClass fails on purpose")

    def test_a(self):
        pass

    def test_b(self):
        pass


class Outcomes(SimpleTestCase):
    # A skip first: since Python 3.12 a skipped test is never "started", which
    # shifted Django's parallel runner's idea of the following tests.
    @unittest.skip("skipped on purpose")
    def test_1_skipped(self):
        pass

    def test_2_fails(self):
        self.fail("fails on purpose")

    def test_3_errors(self):
        raise ValueError("errors on purpose")

    def test_4_passes(self):
        pass

    def test_5_subtests(self):
        for i in range(3):
            with self.subTest(i=i):
                assert i < 1

    @unittest.expectedFailure
    def test_6_expected_failure(self):
        self.fail("expected")

    @unittest.expectedFailure
    def test_7_unexpected_success(self):
        pass

    def test_8_flaky(self):
        # Fails the first time in a run.py invocation, passes when rerun.
        # Beside the report (runtests.py gives each run its own TMPDIR).
        marker = os.path.join(
            os.path.dirname(os.environ["DJANGO_AIO_IT_REPORT"]),
            f"selftest-flaky-{os.environ['DJANGO_AIO_IT_DB_SUFFIX']}",
        )
        if os.path.exists(marker):
            os.unlink(marker)
            return
        open(marker, "w").close()
        self.fail("fails the first time on purpose")


class Database(TestCase):
    def test_query(self):
        User.objects.create(username="selftest")
        assert User.objects.count() == 1


def count_users_in_a_thread():
    counted = []

    def work():
        try:
            counted.append(User.objects.count())
        finally:
            connections.close_all()

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    return counted


class ThreadQuery(SimpleTestCase):
    # A thread has no event loop: its statements run on Django's own sync
    # connection, so with --through-bridge this test fails as not bridged.
    databases = {"default"}

    def test_thread(self):
        assert count_users_in_a_thread() == [0]


class ListedThreadQuery(SimpleTestCase):
    # The same, listed in selftest/through-bridge-list.txt: it runs plain.
    databases = {"default"}

    def test_thread(self):
        assert count_users_in_a_thread() == [0]
