"""Server paths the deployer mounts or writes: normalised, and never a system directory.

A path is compared only after normalising (`//etc`, `/etc/.` and `/./usr` are `/etc` and `/usr`),
and the server's own answer (`realpath`, which follows symlinks) is checked with the same rule.
"""

from __future__ import annotations

# Mounting over one of these hides the system (or the operator's files) until the next boot and
# beyond: the fstab line brings it back every time.
SYSTEM_DIRS = frozenset({
    "/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib32", "/lib64", "/libx32", "/media", "/mnt",
    "/opt", "/proc", "/root", "/run", "/sbin", "/snap", "/srv", "/sys", "/tmp", "/usr", "/var",
    "/var/lib", "/var/log", "/var/cache", "/var/tmp", "/var/spool", "/var/mail", "/var/backups",
})
# ... and nothing below these: the system's own trees, never a place for data.
SYSTEM_TREES = ("/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32", "/proc", "/run",
                "/sbin", "/sys", "/usr", "/var/lib/docker", "/var/lib/containerd")


def normalise(path: str) -> str | None:
    """An absolute path without empty, `.` or trailing components; None for a relative path or `..`."""
    if not path.startswith("/"):
        return None
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts:
        return None
    return "/" + "/".join(parts)


def system_dir(path: str) -> str | None:
    """The system directory `path` is or lies in (None when it is a place for data). `path` is normalised."""
    if path in SYSTEM_DIRS:
        return path
    return next((t for t in SYSTEM_TREES if path.startswith(t + "/")), None)
