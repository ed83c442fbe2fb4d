"""Simulators of the hub's counterparts (portals, transport servers) for tests and demos."""
