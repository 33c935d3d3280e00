"""featbench: a benchmark harness for nearest-neighbour search on image and text features."""

__version__ = "0.1.0"
