"""What a run writes: the results folder (:mod:`~meta.review.outputs.results_folder`), formula-safe
CSV (:mod:`~meta.review.outputs.csvsafe`), figures (:mod:`~meta.review.outputs.figures`), the report
(:mod:`~meta.review.outputs.report`), the coverage table (:mod:`~meta.review.outputs.coverage`) and
the comparison of two results folders (:mod:`~meta.review.outputs.diff`)."""
