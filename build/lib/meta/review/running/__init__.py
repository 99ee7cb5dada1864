"""Running the declared analyses: evidence sets (:mod:`~meta.review.running.evidence`), one analysis
(:mod:`~meta.review.running.run`), both sets and the cumulative update
(:mod:`~meta.review.running.living`), sensitivity sweeps (:mod:`~meta.review.running.sensitivity`)
and the claim verdicts (:mod:`~meta.review.running.claims`)."""
