"""The pure core: functions of bytes, trees and records.

Nothing in this package imports Kafka, Faust or performs file or network I/O;
``tests/unit/test_core_purity.py`` enforces that. Stream processors and
connectors are thin adapters around these functions.
"""
