"""aloop: active-learning synthesis planning for materials found by composition."""

__version__ = "0.1.0"
