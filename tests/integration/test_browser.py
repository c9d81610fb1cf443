"""The example webchat page in headless Chromium: two devices of one user."""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import ROOT, checkout_lock

BROWSER_DIR = ROOT / "tests" / "browser"


def test_two_devices_in_chromium(omnihub, tmp_path):
    if not Path("/usr/bin/chromium").exists() or not shutil.which("node"):
        pytest.fail("chromium and node are required (tools/dev test installs them)")
    with checkout_lock("browser-npm"):  # test_workspace.py may install on the other worker
        if not (BROWSER_DIR / "node_modules" / "playwright-core").exists():
            subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--silent"],
                           cwd=BROWSER_DIR, check=True, timeout=300)
    d = omnihub({"http.static_dir": str(ROOT / "examples" / "webchat")})
    shot = tmp_path / "webchat.png"
    r = subprocess.run(["node", "webchat.mjs", d.url, d.customer_token("browser-user", "any"),
                        "browser-user", d.agent_token()], cwd=BROWSER_DIR, capture_output=True,
                       text=True, timeout=120, env=dict(os.environ, SCREENSHOT=str(shot)))
    assert r.returncode == 0, r.stdout + r.stderr
    assert shot.exists()
