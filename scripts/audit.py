"""Audit pinned dependencies for known vulnerabilities; fail on any finding, say so when no database answered."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    """Run pip-audit on requirements.txt and summarise."""
    proc = subprocess.run([sys.executable, "-m", "pip_audit", "-r", str(ROOT / "requirements.txt"), "--format", "json",
                           "--progress-spinner", "off"], capture_output=True, text=True, timeout=600)
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError:
        print(f"pip-audit could not run: {proc.stderr.strip().splitlines()[-1:] or proc.returncode}")
        return 0 if "ConnectionError" in proc.stderr or "Failed to resolve" in proc.stderr else 1
    deps = report.get("dependencies", [])
    vulnerable = [d for d in deps if d.get("vulns")]
    skipped = [d for d in deps if d.get("skip_reason")]
    for dep in vulnerable:
        ids = ", ".join(v["id"] for v in dep["vulns"])
        print(f"VULNERABLE {dep['name']} {dep['version']}: {ids}")
    audited = len(deps) - len(skipped)
    print(f"pip-audit: {audited} of {len(deps)} dependencies audited, {len(vulnerable)} vulnerable"
          + (f"; {len(skipped)} could not be checked (no vulnerability database reachable from here)" if skipped else ""))
    return 1 if vulnerable else 0


if __name__ == "__main__":
    sys.exit(main())
