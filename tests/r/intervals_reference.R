# Reference values for tests/test_intervals.py: the tests (test=), prediction
# intervals (predict(pi.type=)), Q-profile confidence intervals (confint())
# and the common-tau2 subgroup model (rma(mods = ~ factor(group))) of
# R metafor 3.8.1 (+ metadat, jsonlite):
#   Rscript tests/r/intervals_reference.R   (from the repository root)
# writes tests/fixtures/intervals_reference.json (17 significant digits).
#
# Control settings, so that the reference is the converged value rather than
# metafor's default stopping point:
#   REML: control = list(threshold = 1e-12, maxiter = 1000)   (default 1e-5, 100)
#   PM:   control = list(tol = 1e-12)                          (uniroot, default eps^0.25)
#   confint(): control = list(tol = 1e-12)                     (uniroot, default eps^0.25 ~ 1.2e-4)
# metafor predict() returns no prediction interval for FE models, so "pis"
# holds random-effects fits only.
suppressMessages({library(metafor); library(jsonlite)})
stopifnot(packageVersion("metafor") == "3.8.1")

ctrl <- function(method) switch(method,
  REML = list(threshold = 1e-12, maxiter = 1000),
  PM = list(tol = 1e-12),
  list())

RE <- c("DL", "REML", "PM")
TESTS <- c("z", "knha", "adhoc", "t")
PITYPES <- c("default", "simple", "riley", "t")

fit <- function(yi, vi, method, test, level) {
  f <- suppressWarnings(rma(yi, vi, method = method, test = test, level = 100 * level,
                            control = ctrl(method)))
  out <- list(method = method, test = test, test_used = f$test, level = level, k = f$k,
              estimate = c(f$beta), se = f$se, stat = f$zval, p = f$pval,
              ci_low = f$ci.lb, ci_high = f$ci.ub, tau2 = f$tau2, s2w = f$s2w)
  if (method != "FE") {
    pis <- list()
    for (pt in PITYPES) {
      pr <- predict(f, pi.type = pt)
      pis[[pt]] <- list(pi_low = pr$pi.lb, pi_high = pr$pi.ub)
    }
    out$pis <- pis
  }
  out
}

qprofile <- function(yi, vi, method, level) {
  f <- suppressWarnings(rma(yi, vi, method = method, level = 100 * level, control = ctrl(method)))
  ci <- confint(f, control = list(tol = 1e-12))
  r <- ci$random
  list(method = method, level = level, tau2_fit = f$tau2,
       estimate = unname(r[, "estimate"]), ci_low = unname(r[, "ci.lb"]), ci_high = unname(r[, "ci.ub"]),
       rows = rownames(r), ci_null = ci$ci.null, lb_sign = ci$lb.sign, ub_sign = ci$ub.sign)
}

common <- function(yi, vi, g, method) {
  g <- factor(g, levels = unique(g))  # first appearance, as meta.pool.subgroups
  f <- suppressWarnings(rma(yi, vi, mods = ~ g, method = method, control = ctrl(method)))
  f0 <- suppressWarnings(rma(yi, vi, mods = ~ 0 + g, method = method, control = ctrl(method)))
  list(method = method, labels = levels(g), tau2 = f$tau2, qe = f$QE, qe_df = f$k - f$p, qe_p = f$QEp,
       qm = f$QM, qm_df = f$m, qm_p = f$QMp, i2 = f$I2, h2 = f$H2,
       estimate = unname(c(f0$beta)), se = unname(f0$se), stat = unname(f0$zval), p = unname(f0$pval),
       ci_low = unname(f0$ci.lb), ci_high = unname(f0$ci.ub), tau2_0 = f0$tau2)
}

case <- function(name, yi, vi, note, groups = NULL) {
  yi <- c(yi); vi <- c(vi)
  fits <- list()
  for (m in c("FE", RE)) for (t in TESTS) for (lv in c(0.95, 0.9))
    fits[[length(fits) + 1]] <- fit(yi, vi, m, t, lv)
  out <- list(name = name, note = note, yi = yi, vi = vi, fits = fits)
  if (length(yi) >= 2) {
    qp <- list()
    for (m in RE) for (lv in c(0.95, 0.9)) qp[[length(qp) + 1]] <- qprofile(yi, vi, m, lv)
    out$confint <- qp
  }
  if (!is.null(groups)) {
    out$groups <- as.character(groups)
    out$common <- lapply(c("FE", RE), function(m) common(yi, vi, groups, m))
  }
  out
}

bcg <- escalc(measure = "RR", ai = tpos, bi = tneg, ci = cpos, di = cneg, data = dat.bcg)
nor <- escalc(measure = "SMD", m1i = m1i, sd1i = sd1i, n1i = n1i, m2i = m2i, sd2i = sd2i, n2i = n2i,
              data = dat.normand1999)
mol <- escalc(measure = "ZCOR", ri = ri, ni = ni, data = dat.molloy2014)
hac <- dat.hackshaw1998

cases <- list(
  case("bcg_logrr", bcg$yi, bcg$vi, "metadat dat.bcg, escalc RR (log risk ratio); groups = alloc",
       groups = dat.bcg$alloc),
  case("normand_smd", nor$yi, nor$vi, "metadat dat.normand1999, escalc SMD"),
  case("molloy_zcor", mol$yi, mol$vi, "metadat dat.molloy2014, escalc ZCOR; groups = design",
       groups = dat.molloy2014$design),
  case("hackshaw_logor", hac$yi, hac$vi, "metadat dat.hackshaw1998 yi/vi (log OR); groups = design",
       groups = hac$design),
  case("bcg_first2", bcg$yi[1:2], bcg$vi[1:2], "first two studies of dat.bcg (k = 2)"),
  case("homogeneous", c(0.10, 0.11, 0.10, 0.105), c(0.1, 0.1, 0.1, 0.1),
       "synthetic: four nearly equal effects (Q far below k - 1, Q-profile CI is the null set)")
)

out <- list(
  generated_by = "tests/r/intervals_reference.R",
  r_version = R.version.string,
  metafor_version = as.character(packageVersion("metafor")),
  cases = cases
)
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, null = "null", na = "null", pretty = TRUE),
           "tests/fixtures/intervals_reference.json")
