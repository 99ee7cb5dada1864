"""meta: reproduce and extend Neal et al. (2016), Gait & Posture 45:69-82.

Data flow: CSV rows -> validated study table (``meta.data``) -> effect sizes
(``meta.effects``) -> pooled results (``meta.pool``, ``meta.bias``) -> plots and
report (``meta.plots``, ``meta.report``).
"""

__version__ = "0.1.0"
