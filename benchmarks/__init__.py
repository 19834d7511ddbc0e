"""Speed and memory benchmarks (``make bench``); results in ``benchmarks/results/<name>.json``."""
