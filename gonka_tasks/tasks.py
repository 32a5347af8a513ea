"""The `fab` tasks, for fabfiles that import them from here (`from gonka_tasks.tasks import build_namespace`).

The tasks themselves live in `gonka_tasks.cli`."""

from gonka_tasks.cli import build_namespace

__all__ = ["build_namespace"]
