"""`nfo serve` answers NETCONF over SSH with the same users as RESTCONF (real ncclient)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from ncclient import manager
from ncclient.xml_ import to_ele


def test_nfo_serve_speaks_netconf_to_ncclient(tmp_path: Path) -> None:
    state = tmp_path / "state"
    proc = subprocess.Popen(
        [sys.executable, "-m", "nfo", "--state-dir", str(state), "serve", "--restconf", "off",
         "--netconf", "127.0.0.1:0"],
        env={**os.environ, "NFO_ADMIN_PASSWORD": "nc-admin-pw"},
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        port = None
        for line in proc.stdout:
            if "NETCONF over SSH on" in line:
                port = int(line.rsplit(":", 1)[1])
            if "serving" in line:
                break
        assert port is not None
        with manager.connect(host="127.0.0.1", port=port, username="admin",
                             password="nc-admin-pw", hostkey_verify=False, allow_agent=False,
                             look_for_keys=False, timeout=30) as m:
            assert "urn:ietf:params:netconf:base:1.1" in m.server_capabilities
            reply = m.get_config("running", filter=(
                "subtree", '<catalog xmlns="urn:nfo:catalog"/>'))
            assert "udp-echo" in reply.xml
            # the composition root serves nfo-transactions: the seeding commit is listed
            history = m.dispatch(to_ele('<history xmlns="urn:nfo:transactions"/>'))
            assert "<revision>1</revision>" in history.xml
        assert (state / "ssh").is_dir()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        finally:
            proc.kill()
