"""meta: reproduce and extend Neal et al. (2016), Gait & Posture 45:69-82.

Two wings. The general meta-analysis library, for anyone's ``yi``, ``vi``:
:mod:`meta.effects`, :mod:`meta.pool`, :mod:`meta.bias`, :mod:`meta.bayes`,
:mod:`meta.confint`, :mod:`meta.robustness`, :mod:`meta.plots`. The review built on it,
:mod:`meta.review` (data folder -> analyses -> claims, figures, report). The command line,
:mod:`meta.cli`, sits above both.
"""

__version__ = "0.1.0"
