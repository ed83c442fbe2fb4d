"""Simulators of the hub's counterparts (portals, transport servers, vendor endpoints) for tests and demos."""
