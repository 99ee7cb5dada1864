# Reference values for tests/test_influence.py, tests/test_heterogeneity.py and
# tests/test_influence_plots.py.
# Produced with R metafor 3.8.1 (+ metadat, jsonlite):
#   Rscript tests/r/influence_reference.R   (from the repository root)
# writes tests/fixtures/influence_reference.json (17 significant digits).
#
# What is recorded, per data set:
#   * for every estimator (FE, DL, REML, ML, PM, EB, HE, HS, SJ) and test (z, knha):
#     influence(res) (rstudent, dffits, cook.d, cov.r, tau2.del, QE.del, hat, weight,
#     dfbs, is.infl), rstandard(res), baujat(res) coordinates, res$se.tau2;
#   * ranktest(res), fsn(yi, vi, type = Rosenthal / Orwin / Rosenberg, ...);
#   * confint(res, type = "PL") for ML and REML (levels 95 and 90);
#   * gosh(res) on small k (all subsets);
#   * rma(yi, vi, mods = ~ factor(g), test = "knha"/"adhoc") QM F-tests and the
#     ~ 0 + factor(g) subgroup estimates, for the data sets with a grouping.
# Iterative estimators are run with tight control settings (the leave-one-out
# refits of influence() use the same control):
#   REML/ML/EB: control = list(threshold = 1e-12, maxiter = 1000)
#   PM:         control = list(tol = 1e-12)
# confint(type = "PL") is run with control = list(tol = 1e-12) (uniroot; default eps^0.25).
suppressMessages({library(metafor); library(jsonlite)})
stopifnot(packageVersion("metafor") == "3.8.1")
pdf(NULL)  # baujat() and gosh() draw; nothing is kept

METHODS <- c("FE", "DL", "REML", "ML", "PM", "EB", "HE", "HS", "SJ")
ctrl <- function(method) switch(method,
  REML = list(threshold = 1e-12, maxiter = 1000),
  ML = list(threshold = 1e-12, maxiter = 1000),
  EB = list(threshold = 1e-12, maxiter = 1000),
  PM = list(tol = 1e-12),
  list())

fit <- function(yi, vi, method, test = "z")
  suppressWarnings(rma(yi, vi, method = method, test = test, control = ctrl(method)))

na <- function(x) if (is.null(x)) NA else x

one_fit <- function(yi, vi, method, test) {
  f <- tryCatch(fit(yi, vi, method, test), error = function(e) NULL)
  if (is.null(f)) return(list(method = method, test = test, error = "fit"))
  out <- list(method = method, test = ifelse(test == "knha", "hksj", "z"),
              estimate = c(f$beta), se = f$se, tau2 = f$tau2, se_tau2 = na(f$se.tau2), s2w = f$s2w, q = f$QE)
  inf <- tryCatch(suppressWarnings(influence(f)), error = function(e) NULL)
  if (!is.null(inf)) {
    out$influence <- list(rstudent = inf$inf$rstudent, dffits = inf$inf$dffits, cook_d = inf$inf$cook.d,
                          cov_r = inf$inf$cov.r, tau2_del = inf$inf$tau2.del, qe_del = inf$inf$QE.del,
                          hat = inf$inf$hat, weight = inf$inf$weight, dfbetas = inf$dfbs[[1]],
                          is_infl = as.numeric(inf$is.infl))
  }
  rs <- suppressWarnings(rstandard(f))
  out$rstandard <- list(resid = rs$resid, se = rs$se, z = rs$z)
  bj <- tryCatch(suppressWarnings(baujat(f)), error = function(e) NULL)
  if (!is.null(bj)) out$baujat <- list(x = bj$x, y = bj$y)
  out
}

case <- function(name, yi, vi, note = "", groups = NULL, gosh_methods = character(0)) {
  out <- list(name = name, note = note, yi = yi, vi = vi)
  fits <- list()
  for (m in METHODS) for (t in c("z", "knha")) fits[[length(fits) + 1]] <- one_fit(yi, vi, m, t)
  out$fits <- fits
  rt <- tryCatch(suppressWarnings(ranktest(fit(yi, vi, "FE"))), error = function(e) NULL)
  out$ranktest <- if (is.null(rt)) NULL else list(tau = c(rt$tau), p = rt$pval)
  fs <- list()
  add_fsn <- function(label, ...) {
    r <- tryCatch(suppressWarnings(fsn(yi, vi, ...)), error = function(e) NULL)
    if (!is.null(r))
      fs[[length(fs) + 1]] <<- list(label = label, type = r$type, fsnum = r$fsnum, alpha = r$alpha,
                                    pval = na(r$pval), meanes = na(r$meanes), target = na(r$target))
  }
  add_fsn("rosenthal", type = "Rosenthal")
  add_fsn("rosenthal_a10", type = "Rosenthal", alpha = 0.10)
  add_fsn("rosenthal_fisher", type = "Rosenthal", test = "Fisher")
  add_fsn("orwin", type = "Orwin")
  add_fsn("orwin_weighted", type = "Orwin", weighted = TRUE)
  add_fsn("orwin_target", type = "Orwin", target = 0.05)
  add_fsn("rosenberg", type = "Rosenberg")
  add_fsn("rosenberg_a10", type = "Rosenberg", alpha = 0.10)
  out$fsn <- fs
  pl <- list()
  for (m in c("ML", "REML")) for (lv in c(95, 90)) {
    f <- tryCatch(suppressWarnings(rma(yi, vi, method = m, level = lv, control = ctrl(m))), error = function(e) NULL)
    if (is.null(f)) next
    ci <- tryCatch(suppressWarnings(confint(f, type = "PL", control = list(tol = 1e-12))), error = function(e) NULL)
    if (is.null(ci)) next
    r <- ci$random
    pl[[length(pl) + 1]] <- list(method = m, level = lv / 100, estimate = unname(r[, 1]),
                                 ci_low = unname(r[, 2]), ci_high = unname(r[, 3]),
                                 lb_sign = ci$lb.sign, ub_sign = ci$ub.sign, ci_null = ci$ci.null)
  }
  out$pl <- pl
  if (length(gosh_methods)) {
    gs <- list()
    for (m in gosh_methods) {
      f <- fit(yi, vi, m)
      g <- suppressWarnings(gosh(f, progbar = FALSE))
      code <- as.vector(g$incl %*% 2^(seq_len(ncol(g$incl)) - 1))
      gs[[length(gs) + 1]] <- list(method = m, code = code, k = g$res$k, q = g$res$QE, i2 = g$res$I2,
                                   h2 = g$res$H2, tau2 = g$res$tau2, estimate = g$res$estimate)
    }
    out$gosh <- gs
  }
  if (!is.null(groups)) {
    sg <- list()
    for (m in c("FE", "DL", "REML", "PM")) for (t in c("knha", "adhoc", "t")) {
      f <- suppressWarnings(rma(yi, vi, mods = ~ factor(groups, levels = unique(groups)), method = m, test = t,
                                control = ctrl(m)))
      f0 <- suppressWarnings(rma(yi, vi, mods = ~ 0 + factor(groups, levels = unique(groups)), method = m, test = t,
                                 control = ctrl(m)))
      p0 <- predict(f0, newmods = diag(length(unique(groups))))
      sg[[length(sg) + 1]] <- list(method = m, test = ifelse(t == "knha", "hksj", t), qm = f$QM, qm_df1 = f$QMdf[1],
                                   qm_df2 = f$QMdf[2], qm_p = f$QMp, tau2 = f$tau2, s2w = f$s2w,
                                   labels = unique(groups), estimate = c(f0$beta), se = f0$se, stat = f0$zval,
                                   p = f0$pval, ci_low = f0$ci.lb, ci_high = f0$ci.ub,
                                   pi_low = p0$pi.lb, pi_high = p0$pi.ub)
    }
    out$groups <- groups
    out$subgroups_knha <- sg
  }
  out
}

cases <- list()

bcg <- escalc("RR", ai = tpos, bi = tneg, ci = cpos, di = cneg, data = dat.bcg)
cases[[length(cases) + 1]] <- case("bcg_logrr", c(bcg$yi), c(bcg$vi),
  "dat.bcg, escalc('RR'): log risk ratios, k = 13; subgroups by alloc", groups = as.character(bcg$alloc))

bcg8 <- bcg[1:8, ]
cases[[length(cases) + 1]] <- case("bcg8_logrr", c(bcg8$yi), c(bcg8$vi),
  "dat.bcg studies 1-8 (escalc('RR')): gosh over all 255 subsets", gosh_methods = METHODS)

nor <- escalc("MD", m1i = m1i, sd1i = sd1i, n1i = n1i, m2i = m2i, sd2i = sd2i, n2i = n2i, data = dat.normand1999)
cases[[length(cases) + 1]] <- case("normand1999_md", c(nor$yi), c(nor$vi),
  "dat.normand1999, escalc('MD'): k = 9 (length of stay, days); gosh over all 511 subsets",
  groups = ifelse(seq_len(nrow(nor)) <= 4, "first", "rest"), gosh_methods = c("FE", "DL", "REML"))

hk <- dat.hackshaw1998
cases[[length(cases) + 1]] <- case("hackshaw1998_logor", c(hk$yi), c(hk$vi),
  "dat.hackshaw1998: log odds ratios, k = 37; subgroups by design", groups = as.character(hk$design))

cases[[length(cases) + 1]] <- case("k2", c(0.1, 0.9), c(0.02, 0.05), "k = 2: each leave-one-out fit has k = 1")
cases[[length(cases) + 1]] <- case("k3", c(0.2, 0.5, -0.1), c(0.03, 0.05, 0.04), "k = 3",
  gosh_methods = METHODS)
cases[[length(cases) + 1]] <- case("identical_effects", rep(0.3, 5), c(0.01, 0.02, 0.03, 0.04, 0.05),
  "every yi equal: Q = 0, tau2 = 0, residuals 0")
cases[[length(cases) + 1]] <- case("tau2_zero_boundary", c(0.30, 0.32, 0.29, 0.31, 0.33, 0.30),
  c(0.04, 0.05, 0.06, 0.03, 0.05, 0.04), "Q < k - 1: tau2 = 0 for every estimator")
cases[[length(cases) + 1]] <- case("huge_outlier", c(0.1, 0.2, 0.15, 0.12, 0.18, 0.25, 5.0),
  c(0.02, 0.03, 0.025, 0.02, 0.03, 0.04, 0.02), "one study 5 units away from the rest",
  groups = c("a", "a", "b", "b", "a", "b", "b"))

out <- list(metafor = as.character(packageVersion("metafor")), R = R.version.string, cases = cases)
# jsonlite caps digits at 15; write every number with 17 significant digits
# (round-trips a double exactly) as verbatim JSON.
num17 <- function(x) {
  if (is.list(x)) return(lapply(x, num17))
  if (is.numeric(x) || is.logical(x) && all(is.na(x))) {
    s <- ifelse(is.na(x), "null", ifelse(is.infinite(x), ifelse(x > 0, "1e999", "-1e999"), sprintf("%.17g", as.numeric(x))))
    return(structure(if (length(x) == 1) s else paste0("[", paste(s, collapse = ","), "]"), class = "json"))
  }
  x
}
writeLines(toJSON(num17(out), auto_unbox = TRUE, json_verbatim = TRUE, null = "null", pretty = FALSE),
           "tests/fixtures/influence_reference.json")
cat("wrote tests/fixtures/influence_reference.json\n")
