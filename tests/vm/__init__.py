"""The VM tier (a package, so that its conftest does not shadow tests/integration's
``conftest`` module when both directories are given to pytest)."""
