"""Learnings that pay off: kept with their provenance, merged when they say the same thing,
picked by relevance, measured against a holdout, retired when they hurt.

- `words`: how a text becomes terms (stems, stop words, negation), shared by all below.
- `similar`: near-duplicate detection (weighted Jaccard over terms, tested threshold).
- `index`: the relevance index (TF-IDF cosine over impact-ordered postings).
- `effect`: with/without success rates and their confidence interval.
- `book`: the engine's part that ties them to the store (save, pick, measure, change).

This package's `__init__` imports nothing, so the store can use `similar` without a cycle.
"""
