"""tools/install.py (`make install`): pip's settings reach uv, and pip takes over when uv fails."""

from __future__ import annotations

import importlib.util
import subprocess
from pathlib import Path

import pytest

TOOL = Path(__file__).resolve().parent.parent / "tools" / "install.py"


@pytest.fixture()
def install():
    spec = importlib.util.spec_from_file_location("rsitr_install_tool", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


PIP_CONFIG_LIST = """\
:env:.find-links='/opt/wheels'
:env:.timeout='180'
global.cert='/etc/ssl/certs/ca.crt'
global.constraint='/etc/pip/constraints.txt'
global.extra-index-url='file:///opt/a/simple file:///opt/b/simple'
global.find-links='/ignored/because/env/wins'
global.index-url='https://mirror.example/simple'
install.trusted-host='mirror.example'
site.no-index='true'
"""


def test_pip_settings_become_uv_flags_and_environment(install, monkeypatch):
    def fake_run(command, **kwargs):
        assert command[1:] == ["-m", "pip", "config", "list"]
        return subprocess.CompletedProcess(command, 0, stdout=PIP_CONFIG_LIST, stderr="")

    monkeypatch.setattr(install.subprocess, "run", fake_run)
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("UV_HTTP_TIMEOUT", raising=False)
    settings = install.pip_settings("python")
    assert install.uv_arguments(settings) == [
        "--index-strategy", "unsafe-best-match",
        "--index-url", "https://mirror.example/simple",
        "--extra-index-url", "file:///opt/a/simple", "--extra-index-url", "file:///opt/b/simple",
        "--find-links", "/opt/wheels",
        "-c", "/etc/pip/constraints.txt",
        "--allow-insecure-host", "mirror.example",
    ]  # the site-level no-index is not pip's global/install scope: ignored
    env = install.uv_environment(settings)
    assert env["SSL_CERT_FILE"] == "/etc/ssl/certs/ca.crt" and env["UV_HTTP_TIMEOUT"] == "180"


def test_pip_installs_when_uv_fails(install, monkeypatch, capsys):
    commands: list[list[str]] = []
    monkeypatch.setattr(install, "install_with_uv", lambda python, specs: 2)
    monkeypatch.setattr(install, "run", lambda command, env=None: commands.append(command) or 0)
    assert install.main(["-e", ".[test]"]) == 0
    assert commands == [[install.sys.executable, "-m", "pip", "install", "--quiet", "--no-compile",
                         "--disable-pip-version-check", "-c", str(install.LOCK), "-e", ".[test]"]]
    assert "uv failed (exit 2); installing with pip instead" in capsys.readouterr().err


def test_uv_is_pinned_in_the_lock(install):
    pins = [line for line in install.LOCK.read_text().splitlines() if line.startswith("uv==")]
    assert len(pins) == 1
