"""sozialhub: a Kafka-based integration hub for German municipal social administration."""

__version__ = "0.1.0"
