"""Install rsitr's pinned dependencies into the running interpreter's environment (`make install`).

    .venv/bin/python tools/install.py '.[test]'

uv (pinned in requirements.lock) installs the locked versions; it unpacks wheels in parallel,
so a fresh install of the ~6 GB CUDA torch stack takes about half a minute instead of pip's
four (measured on 2 cores). uv does not read pip's configuration, so the indexes, find-links,
constraints and certificate pip is configured with (`pip config list`: files and PIP_*
variables) are passed on, and `--index-strategy unsafe-best-match` keeps pip's rule of taking
a pinned version from whichever index has it. If uv cannot be installed or fails, the same
install runs with pip (`--no-compile`), so a machine that can run pip can run `make`.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

LOCK = Path(__file__).resolve().parent.parent / "requirements.lock"
# pip option -> uv flag, for options that may hold several whitespace-separated values
LIST_OPTIONS = {"extra-index-url": "--extra-index-url", "find-links": "--find-links", "constraint": "-c",
                "trusted-host": "--allow-insecure-host"}


def pip_settings(python: str) -> dict[str, str]:
    """pip's effective options (`pip config list`): a PIP_* variable wins over the config files."""
    listing = subprocess.run([python, "-m", "pip", "config", "list"], capture_output=True, text=True, check=False)
    from_files: dict[str, str] = {}
    from_env: dict[str, str] = {}
    for line in listing.stdout.splitlines():
        key, sep, value = line.partition("=")
        if not sep:
            continue
        scope, _, option = key.rpartition(".")
        target = from_env if scope == ":env:" else from_files
        if scope in (":env:", "global", "install"):
            target[option] = value.strip().strip("'\"")
    return {**from_files, **from_env}


def uv_arguments(settings: dict[str, str]) -> list[str]:
    """uv flags equivalent to pip's index, find-links, constraint and trusted-host settings."""
    args = ["--index-strategy", "unsafe-best-match"]
    if settings.get("index-url"):
        args += ["--index-url", settings["index-url"]]
    if settings.get("no-index", "").lower() in ("1", "true", "yes", "on"):
        args.append("--no-index")
    for option, flag in LIST_OPTIONS.items():
        for value in settings.get(option, "").split():
            args += [flag, value]
    return args


def uv_environment(settings: dict[str, str]) -> dict[str, str]:
    """The environment for uv: pip's certificate bundle and timeout where uv has no own setting."""
    env = dict(os.environ)
    if settings.get("cert") and "SSL_CERT_FILE" not in env:
        env["SSL_CERT_FILE"] = settings["cert"]
    if settings.get("timeout") and "UV_HTTP_TIMEOUT" not in env:
        env["UV_HTTP_TIMEOUT"] = settings["timeout"]
    return env


def run(command: list[str], env: dict[str, str] | None = None) -> int:
    print("install:", shlex.join(command), flush=True)
    return subprocess.run(command, env=env, check=False).returncode


def install_with_uv(python: str, specs: list[str]) -> int:
    """pip-install the pinned uv, then uv-install ``specs`` under the lock; the exit code."""
    pip = [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    code = run([*pip, "-c", str(LOCK), "uv"])
    if code:
        return code
    settings = pip_settings(python)
    uv = [python, "-m", "uv", "pip", "install", "--quiet", "--python", python, "-c", str(LOCK), *uv_arguments(settings)]
    return run([*uv, *specs], env=uv_environment(settings))


def main(argv: list[str]) -> int:
    specs = argv or [".[test]"]
    python = sys.executable
    code = install_with_uv(python, specs)
    if code == 0:
        return 0
    print(f"install: uv failed (exit {code}); installing with pip instead", file=sys.stderr, flush=True)
    return run([python, "-m", "pip", "install", "--quiet", "--no-compile", "--disable-pip-version-check",
                "-c", str(LOCK), *specs])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
