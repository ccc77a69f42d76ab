"""What ``run.py --self-test`` must read from a run of tests.py (no Django imports)."""

EXPECTED = {
    "failing": {
        "setUpClass (aio_harness.selftest.tests.SetUpClassError)": "error",
        "tearDownClass (aio_harness.selftest.tests.TearDownClassError)": "error",
        "aio_harness.selftest.tests.Outcomes.test_2_fails": "failure",
        "aio_harness.selftest.tests.Outcomes.test_3_errors": "error",
        "aio_harness.selftest.tests.Outcomes.test_5_subtests": "failure",
        "aio_harness.selftest.tests.Outcomes.test_7_unexpected_success": "unexpected_success",
        "aio_harness.selftest.tests.Outcomes.test_8_flaky": "failure",
    },
    "passed": 5,
    "skipped": 1,
}

# What rerunning the failures finds passing the second time.
FLAKY = ["aio_harness.selftest.tests.Outcomes.test_8_flaky"]
