"""Hypothesis strategies for the metric property tests: hostile score vectors, π grids and positive factors."""

from __future__ import annotations

from hypothesis import strategies as st

magnitudes = st.sampled_from([5e-324, 1e-310, 1e-300, 1e-45, 1e-12, 1e-3, 1.0, 7.0, 1e12, 1e38, 1e300])
hostile_scores = st.lists(
    st.one_of(st.just(0.0), magnitudes, st.floats(min_value=1e-9, max_value=1e9)), min_size=2, max_size=24
)
pi_grids = st.lists(
    st.one_of(st.floats(min_value=1e-6, max_value=1 - 1e-6), st.sampled_from([1e-9, 0.5, 1 - 1e-9])),
    min_size=1,
    max_size=9,
    unique=True,
).map(sorted)
positive_factors = st.sampled_from([1e-30, 1e-6, 0.5, 3.0, 1e6, 1e30])
