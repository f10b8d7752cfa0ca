"""A second local user, for the tests in which another user attacks the control socket: created
once (a system account without a home) when the tests run as root; skipped otherwise."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

NAME = "actortrade-qa"


def other_user() -> pwd.struct_passwd:
    """The second user's passwd entry; skips the calling test when there cannot be one."""
    if os.geteuid() != 0:
        pytest.skip("needs root, to create a second user and run processes as it")
    try:
        return pwd.getpwnam(NAME)
    except KeyError:
        pass
    try:
        created = subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", NAME],
            capture_output=True,
            text=True,
            check=False,
        )
    except FileNotFoundError:
        pytest.skip(f"cannot create user {NAME}: no useradd")
    try:
        # Another test process may have created it meanwhile (useradd then fails): look again.
        return pwd.getpwnam(NAME)
    except KeyError:
        pytest.skip(f"cannot create user {NAME}: {created.stderr.strip() or created.returncode}")


IMPOSTOR = Path(__file__).with_name("impostor.py")


def impostor_command(user: pwd.struct_passwd, *args: str) -> list[str]:
    """``tests/impostor.py ARGS`` under a Python that ``user`` may run (our interpreter may live
    in a home directory closed to others); skips the calling test when there is none."""
    for python in (sys.executable, "/usr/bin/python3", shutil.which("python3")):
        if python is None:
            continue
        try:
            usable = subprocess.run(
                [python, "-c", "pass"], capture_output=True, check=False, cwd="/", **as_user(user)
            )
        except PermissionError:
            continue
        if usable.returncode == 0:
            return [python, str(IMPOSTOR), *args]
    pytest.skip(f"no Python that user {user.pw_name} may run")


def as_user(user: pwd.struct_passwd) -> dict[str, Any]:
    """Popen keyword arguments that run the child as ``user``, with no supplementary groups."""
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
