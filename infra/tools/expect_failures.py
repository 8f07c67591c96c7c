"""Assert that a checkov JSON report has exactly the expected results.

    python expect_failures.py REPORT.json EXPECTED.txt

EXPECTED.txt: one `FAIL|PASS CHECK_ID RESOURCE_LOGICAL_ID` per line (# comments
allowed); every failure and every pass in the report must be listed, and
nothing else. Used on infra/tools/policy-fixtures/insecure.yaml to prove each
custom policy fails what it must and passes what it should (a check that
crashed would report neither, and is caught too).
"""

import json
import sys


def main(report_path: str, expected_path: str) -> int:
    with open(report_path, encoding="utf-8") as f:
        report = json.load(f)
    reports = report if isinstance(report, list) else [report]
    failed = set()
    passed = set()
    for r in reports:
        for item in r.get("results", {}).get("failed_checks", []):
            failed.add((item["check_id"], item["resource"].split(".", 1)[1]))
        for item in r.get("results", {}).get("passed_checks", []):
            passed.add((item["check_id"], item["resource"].split(".", 1)[1]))
    expected = {"FAIL": set(), "PASS": set()}
    with open(expected_path, encoding="utf-8") as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if line:
                verdict, check, resource = line.split()
                expected[verdict].add((check, resource))
    ok = True
    for verdict, got in (("FAIL", failed), ("PASS", passed)):
        for check, resource in sorted(expected[verdict] - got):
            print(f"policy self-test: expected {verdict} of {check} on {resource}, did not get it", file=sys.stderr)
            ok = False
        for check, resource in sorted(got - expected[verdict]):
            print(f"policy self-test: unexpected {verdict} of {check} on {resource}", file=sys.stderr)
            ok = False
    if ok:
        print(f"policy self-test: {len(failed)} expected failures and {len(passed)} expected passes")
    return 0 if ok else 1


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1], sys.argv[2]))
