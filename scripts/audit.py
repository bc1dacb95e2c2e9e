"""Audit pinned dependencies for known vulnerabilities; fail on any finding, say so when no database answered."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


NOT_CHECKED = 2  # exit status with --require-check when no vulnerability database answered


def not_checked(why: str, require_check: bool) -> int:
    """Say plainly that nothing was checked; fail only when the caller asked for a real check."""
    print(f"pip-audit: NOT CHECKED: {why}. Nothing is known about vulnerabilities of the pinned dependencies; "
          "run `.venv/bin/python scripts/audit.py --require-check` where the advisory service answers.")
    return NOT_CHECKED if require_check else 0


def main(argv: list[str]) -> int:
    """Run pip-audit on requirements.txt and summarise: 1 on any finding."""
    require_check = "--require-check" in argv
    proc = subprocess.run([sys.executable, "-m", "pip_audit", "-r", str(ROOT / "requirements.txt"), "--format", "json",
                           "--progress-spinner", "off"], capture_output=True, text=True, timeout=600)
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError:
        if "ConnectionError" in proc.stderr or "Failed to resolve" in proc.stderr:
            return not_checked("no vulnerability database reachable from here", require_check)
        print(f"pip-audit could not run: {proc.stderr.strip().splitlines()[-1:] or proc.returncode}")
        return 1
    deps = report.get("dependencies", [])
    vulnerable = [d for d in deps if d.get("vulns")]
    skipped = [d for d in deps if d.get("skip_reason")]
    for dep in vulnerable:
        ids = ", ".join(v["id"] for v in dep["vulns"])
        print(f"VULNERABLE {dep['name']} {dep['version']}: {ids}")
    audited = len(deps) - len(skipped)
    if deps and not audited:
        return not_checked(f"none of the {len(deps)} dependencies could be looked up (no vulnerability database "
                           "answered)", require_check)
    print(f"pip-audit: {audited} of {len(deps)} dependencies audited, {len(vulnerable)} vulnerable"
          + (f"; {len(skipped)} NOT CHECKED (no answer for them)" if skipped else ""))
    return 1 if vulnerable else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
