"""Python warnings never reach the logs as text: pydicom's quote element values (PHI), and
the ``warnings.catch_warnings`` blocks around parsing are process-wide and not thread-safe,
so every entry point routes warnings to a JSON line with the category and place only."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SECRET = "Doe^Jane-4711"


def _run(code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "functions"),
           "GOOGLE_CLOUD_PROJECT": "demo-warnings"}
    return subprocess.run([sys.executable, "-W", "always", "-c", code], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_a_pydicom_warning_quoting_a_value_is_logged_without_its_text():
    # Arrange: pydicom warns "Invalid value for VR AS: '<the value>'"
    code = ("from pacs import log_events\n"
            "log_events.route_warnings()\n"
            "from pydicom.dataset import Dataset\n"
            f"Dataset().PatientAge = {SECRET!r}\n")
    # Act
    out = _run(code)
    # Assert
    assert out.returncode == 0, out.stderr
    assert SECRET not in out.stdout + out.stderr
    line = json.loads(out.stdout.strip().splitlines()[-1])
    assert line["event"] == "warning_issued" and line["severity"] == "WARNING"
    assert line["category"] == "UserWarning" and line["module"] == "pydicom/valuerep.py"


def test_every_entry_point_routes_warnings_when_it_loads():
    # Arrange: each function folder's main.py, loaded as functions-framework loads it
    from localcloud import config

    targets = {fn["folder"]: (fn["entry_point"], fn["trigger"]["type"])
               for fn in config.function_table()}
    code = ["import json, warnings", "from functions_framework import create_app",
            "original = warnings.showwarning", "routed = []"]
    for folder, (target, trigger) in sorted(targets.items()):
        signature = "http" if trigger == "http" else "cloudevent"
        code += ["warnings.showwarning = original",
                 f"create_app({target!r}, {str(ROOT / 'functions' / folder / 'main.py')!r}, "
                 f"{signature!r})",
                 f"routed.append(({folder!r}, warnings.showwarning is not original))"]
    code.append("print(json.dumps(routed))")
    # Act
    out = _run("\n".join(code))
    # Assert
    assert out.returncode == 0, out.stderr
    routed = dict(json.loads(out.stdout.strip().splitlines()[-1]))
    assert routed == {folder: True for folder in targets}
