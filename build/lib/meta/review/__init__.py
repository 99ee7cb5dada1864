"""The review: Neal et al. (2016) rerun and updated from the curated data folder.

Everything that knows ``data/*.csv``, the declared analyses, the review's claims, the
evidence sets or the results folder lives here; it uses the general library
(:mod:`meta.pool`, :mod:`meta.effects`, :mod:`meta.bias`, :mod:`meta.bayes`,
:mod:`meta.confint`, :mod:`meta.robustness`, :mod:`meta.plots`), which knows nothing of it.

Sub-packages, in the order data flows through them (each imports only those before it):

* :mod:`meta.review.inputs` -- the data folder: column specs and checks, loading, the
  analysis declarations, one SMD per outcome row, the successors' published results;
* :mod:`meta.review.running` -- running the analyses: evidence sets, one analysis, the
  living update, sensitivity sweeps, claim verdicts;
* :mod:`meta.review.outputs` -- what a run writes: the results folder, CSVs, figures,
  report, coverage table, and the comparison of two results folders;
* :mod:`meta.review.reproduce` -- ``reproduce()``: the whole review, from folder to folder;
* :mod:`meta.review.docs` -- ``make docs``: the README's pooled excerpt and the coverage table,
  from a run of the bundled data.
"""
