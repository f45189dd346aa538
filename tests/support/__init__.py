"""Test infrastructure that is not a test helper function: the loopback Hub server (registered as a pytest plugin in
`tests/conftest.py`, which makes its `loopback_hub` fixture available to every test module)."""
