"""Integration tests against real services (deploy/services.sh); a package so that mypy does not
see two modules named conftest."""
