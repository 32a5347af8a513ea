"""pytest plugins of gonka-deploy (registered in tests/conftest.py)."""
