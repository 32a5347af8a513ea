"""apt-get on a fresh server, where unattended-upgrades often holds the package locks for minutes.

`install_script()` is the shell text of one install. `apt-get -o DPkg::Lock::Timeout=N` waits
for the dpkg frontend lock, but `apt-get update` does not wait for the lists lock
(`/var/lib/apt/lists/lock`): it fails at once with "Could not get lock". So each apt-get call is
retried while its error is a lock held by another process, up to a deadline, saying what it waits
for; any other error stops at once.
"""

from __future__ import annotations

import shlex

LOCK_WAIT_S = 900
RETRY_PAUSE_S = 5

# one line (it travels inside a command line and shows in the log as one)
_FUNCTION = (
    'gd_apt() { gd_end=$(( $(date +%s) + __WAIT__ )); while :; do '
    'gd_out=$(DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=60 "$@" 2>&1) && return 0; '
    'case $gd_out in *"Could not get lock"*|*"Unable to lock"*|*"Unable to acquire the dpkg"*) ;; '
    '*) printf \'%s\\n\' "$gd_out" >&2; return 1 ;; esac; '
    'if [ "$(date +%s)" -ge "$gd_end" ]; then printf \'%s\\n\' "$gd_out" >&2; return 1; fi; '
    'printf \'waiting for the package lock (%s)\\n\' "$(printf \'%s\\n\' "$gd_out" | grep -m1 -o \'Could not get lock.*\')" >&2; '
    'sleep __PAUSE__; done; }'
)


def apt_function(wait_s: int = LOCK_WAIT_S, pause_s: int = RETRY_PAUSE_S) -> str:
    """The `gd_apt` shell function: apt-get with its arguments, retried while a lock is held."""
    return _FUNCTION.replace("__WAIT__", str(int(wait_s))).replace("__PAUSE__", str(int(pause_s)))


def install_script(packages: list[str], *, wait_s: int = LOCK_WAIT_S, pause_s: int = RETRY_PAUSE_S) -> str:
    """Shell text: refresh the package lists, then install `packages` (both waiting for the locks)."""
    names = " ".join(shlex.quote(p) for p in packages)
    return f"{apt_function(wait_s, pause_s)}; gd_apt update -qq && gd_apt install -y -qq {names}"
