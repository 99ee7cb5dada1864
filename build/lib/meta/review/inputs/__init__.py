"""The data folder: column specs and their checks (:mod:`~meta.review.inputs.schema`), loading
(:mod:`~meta.review.inputs.data`), the analysis declarations (:mod:`~meta.review.inputs.analysis`),
one SMD per outcome row (:mod:`~meta.review.inputs.study_effects`) and the successors' pooled
results (:mod:`~meta.review.inputs.published`)."""
