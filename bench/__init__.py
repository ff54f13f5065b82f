"""Benchmarks of lobbyd against references measured in the same run (``python -m bench``)."""
