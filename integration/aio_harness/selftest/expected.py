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
    "passed": 7,
    "skipped": 1,
}

# With --through-bridge: the thread's statements of ThreadQuery did not go
# through the bridge (ListedThreadQuery is on selftest/through-bridge-list.txt).
EXPECTED_THROUGH_BRIDGE = {
    "failing": {
        **EXPECTED["failing"],
        "aio_harness.selftest.tests.ThreadQuery.test_thread": "not_bridged",
    },
    "passed": 6,
    "skipped": 1,
}
# A test whose statements must all have gone through the bridge.
BRIDGED = "aio_harness.selftest.tests.Database.test_query"

# What rerunning the failures finds passing the second time.
FLAKY = ["aio_harness.selftest.tests.Outcomes.test_8_flaky"]
