"""The `fab` surface: task declarations, node selection, the runner, the fleet. No server knowledge:
tasks hand their work (phases, operations) to `runner.run_task`, which runs it per node through a session.

  options.py       the options every node task shares; no one-letter flags
  selection.py     --node, --nodes, `fab -H`, and the kind of each config
  runner.py        config -> run -> preflight -> work, per node; network nodes before ML servers
  fleet.py         several nodes: a thread pool, one log each, the summary
  tasks.py         the network node's tasks; mlnode_tasks.py the ML-node servers' tasks
"""

from invoke import Collection

from gonka_tasks.cli import mlnode_tasks, tasks


def build_namespace() -> Collection:
    """The collection `fab` shows: every task of the mission (and `demo` where the simulated world is installed)."""
    ns = Collection()
    for t in (*tasks.TASKS, *mlnode_tasks.TASKS):
        ns.add_task(t)
    try:
        from gonka_sim.demo import demo  # noqa: PLC0415 - the demo is optional (needs the simulated world)
        ns.add_task(demo)
    except ImportError:
        pass
    return ns
