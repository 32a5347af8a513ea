"""Shared fixtures: sandbox hosts (tests/plugins/hosts.py) and the simulated Gonka world (world.py)."""

pytest_plugins = ["tests.plugins.hosts", "tests.plugins.world"]
