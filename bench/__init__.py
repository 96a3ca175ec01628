"""batchtui benchmarks: run `python bench/run.py` (see README.md)."""
