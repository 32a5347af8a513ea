"""`fab` looks for a module named fabfile; the namespace itself lives in tasks.py."""

from tasks import ns  # noqa: F401
