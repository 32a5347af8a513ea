"""fab entry point: builds the task namespace of gonka-deploy (see `fab --list`)."""

from gonka_tasks.tasks import build_namespace

ns = build_namespace()
