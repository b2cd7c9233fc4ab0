"""Shared helpers of the head/layer studies (``analyses/head_*.py``, ``analyses/layer_sweep.py``)."""
