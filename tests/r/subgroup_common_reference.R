# Reference values for the common-tau2 subgroup model of meta.pool.subgroups
# (tau2 = "common"; tests/test_input_rules.py) for EVERY tau2 estimator:
# R metafor 3.8.1 rma(yi, vi, mods = ~ factor(g), method = m) (QM with G - 1 df,
# tau2, QE) and rma(yi, vi, mods = ~ factor(g) - 1, method = m) (one estimate,
# se, z, p and CI per group), m in FE, DL, REML, PM, ML, HE, HS, SJ, EB.
#   Rscript tests/r/subgroup_common_reference.R   (from the repository root)
# writes tests/fixtures/subgroup_common_reference.json (17 significant digits).
#
# Control settings, so that the reference is the converged value rather than
# metafor's default stopping point:
#   ML, REML, EB: control = list(threshold = 1e-12, maxiter = 1000)   (default 1e-5, 100)
#   PM:           control = list(tol = 1e-12)                          (uniroot tol)
# For ML and REML also the global maximum of metafor's own logLik() at fixed
# tau2 (rma(..., mods, tau2 = t)): 0 plus 4001 log-spaced values in [1e-4, 1e3],
# then optimize() (tol 1e-10) between the grid neighbours of the best point.
# ("profile_max"; metafor's Fisher scoring starts at the HE estimate and can end
# at a local maximum.)
suppressMessages({library(metafor); library(jsonlite)})
stopifnot(packageVersion("metafor") == "3.8.1")

METHODS <- c("FE", "DL", "REML", "PM", "ML", "HE", "HS", "SJ", "EB")
ctrl <- function(method) switch(method,
  REML = , ML = , EB = list(threshold = 1e-12, maxiter = 1000),
  PM = list(tol = 1e-12),
  list())

profile_max <- function(yi, vi, g, method) {
  ll <- function(t) c(logLik(rma(yi, vi, mods = ~ g, tau2 = t, method = method)))
  grid <- c(0, 10^seq(-4, 3, length.out = 4001))
  llg <- sapply(grid, ll)
  j <- which.max(llg)
  if (j == 1) return(list(tau2 = 0, loglik = llg[1], loglik0 = llg[1]))
  o <- optimize(ll, c(grid[j - 1], grid[min(j + 1, length(grid))]), maximum = TRUE, tol = 1e-10)
  list(tau2 = o$maximum, loglik = o$objective, loglik0 = llg[1])
}

common <- function(yi, vi, g, method) {
  g <- factor(g, levels = unique(g))  # first appearance, as meta.pool.subgroups
  f <- suppressWarnings(rma(yi, vi, mods = ~ g, method = method, control = ctrl(method)))
  f0 <- suppressWarnings(rma(yi, vi, mods = ~ g - 1, method = method, control = ctrl(method)))
  out <- list(method = method, labels = levels(g), tau2 = f$tau2, qe = f$QE, qe_df = f$k - f$p,
              qe_p = f$QEp, qm = f$QM, qm_df = f$m, qm_p = f$QMp, i2 = f$I2, h2 = f$H2,
              loglik = if (method %in% c("ML", "REML")) c(logLik(f)) else NA,
              estimate = unname(c(f0$beta)), se = unname(f0$se), stat = unname(f0$zval),
              p = unname(f0$pval), ci_low = unname(f0$ci.lb), ci_high = unname(f0$ci.ub),
              tau2_0 = f0$tau2, qm_0 = f0$QM, qm_df_0 = f0$m)
  if (method %in% c("ML", "REML")) out$profile_max <- profile_max(yi, vi, g, method)
  out
}

case <- function(name, yi, vi, groups, note) {
  list(name = name, note = note, yi = c(yi), vi = c(vi), groups = as.character(groups),
       common = lapply(METHODS, function(m) common(c(yi), c(vi), groups, m)))
}

bcg <- escalc(measure = "RR", ai = tpos, bi = tneg, ci = cpos, di = cneg, data = dat.bcg)
mol <- escalc(measure = "ZCOR", ri = ri, ni = ni, data = dat.molloy2014)

cases <- list(
  case("interior", c(-0.0897, 2.6676, 0.5625, 0.1551, 0.3, 0.31),
       c(0.095, 0.7272, 1.4897, 0.0016, 0.5, 0.6), c("A", "A", "A", "A", "B", "B"),
       paste("synthetic: the restricted likelihood's slope at tau2 = 0 is negative, but an",
             "interior maximum (tau2 ~ 0.577) is higher than the boundary")),
  case("bcg_alloc", bcg$yi, bcg$vi, dat.bcg$alloc,
       "metadat dat.bcg, escalc RR (log risk ratio); groups = alloc"),
  case("molloy_design", mol$yi, mol$vi, dat.molloy2014$design,
       "metadat dat.molloy2014, escalc ZCOR; groups = design")
)

out <- list(
  generated_by = "tests/r/subgroup_common_reference.R",
  r_version = R.version.string,
  metafor_version = as.character(packageVersion("metafor")),
  cases = cases
)
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, null = "null", na = "null", pretty = TRUE),
           "tests/fixtures/subgroup_common_reference.json")
