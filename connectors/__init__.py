"""Inbound (portal side) and outbound (Fachverfahren side) adapters, one subpackage each.

A connector is thin: the decisions live in :mod:`hub.core`; a connector only
moves bytes between the outside world and Kafka, and says when it is safe to
let go of them.
"""
