"""Speed and memory benchmarks of gradellm-lens (``python benchmarks/run.py``; see benchmarks/README.md)."""
