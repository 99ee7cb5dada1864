# Reference values for tests/test_estimators.py: every tau2 estimator of
# meta.pool (FE, DL, REML, PM, ML, HE, HS, SJ, EB) against metafor 3.8.1
# rma.uni(method = ...), test = "z".
#   Rscript tests/r/estimators_reference.R   (from the repository root)
# writes tests/fixtures/estimators_reference.json (17 significant digits).
#
# Iterative estimators run with tight control settings so that the
# reference is the converged value, not metafor's default stopping point:
#   ML, REML, EB: control = list(threshold = 1e-12, maxiter = 1000)   (default 1e-5, 100)
#   PM:           control = list(tol = 1e-12)                          (uniroot tol)
# "profile" cases: sets where the global maximum of the (restricted)
# likelihood is interior but metafor's Fisher scoring ends at tau2 = 0 (its
# HE start is 0 and the score at 0 is negative), or where an overshooting
# step from the HE start is the trap for a naive iteration.  For those the
# reference maximum is computed here from metafor's own logLik() at fixed
# tau2 (rma(..., tau2 = t)): a grid of 0 plus 4001 log-spaced values in
# [1e-4, 1e3], then optimize() (tol 1e-10) between the grid neighbours of
# the best grid point.
suppressMessages({library(metafor); library(jsonlite)})
stopifnot(packageVersion("metafor") == "3.8.1")

METHODS <- c("FE", "DL", "REML", "PM", "ML", "HE", "HS", "SJ", "EB")
ctrl <- function(method) switch(method,
  REML = , ML = , EB = list(threshold = 1e-12, maxiter = 1000),
  PM = list(tol = 1e-12),
  list())

fit <- function(yi, vi, method, level = 0.95) {
  f <- suppressWarnings(rma(yi, vi, method = method, level = 100 * level, control = ctrl(method)))
  p <- predict(f)
  list(method = method, level = level, k = f$k, estimate = c(f$beta), se = f$se, stat = f$zval,
       p = f$pval, ci_low = f$ci.lb, ci_high = f$ci.ub, tau2 = f$tau2, tau = sqrt(f$tau2),
       se_tau2 = f$se.tau2, i2 = f$I2, h2 = f$H2, q = f$QE, q_df = f$k - 1, q_p = f$QEp,
       pi_low = if (is.null(p$pi.lb)) p$ci.lb else p$pi.lb,
       pi_high = if (is.null(p$pi.ub)) p$ci.ub else p$pi.ub,
       loglik = if (method %in% c("ML", "REML")) c(logLik(f)) else NA,
       weights = unname(weights(f)))
}

steps <- function(x) {  # leave1out / cumul output as a list of columns
  x <- as.data.frame(x)
  list(estimate = x$estimate, se = x$se, stat = x$zval, p = x$pval, ci_low = x$ci.lb,
       ci_high = x$ci.ub, q = x$Q, q_p = x$Qp, tau2 = x$tau2, i2 = x$I2, h2 = x$H2)
}

profile_max <- function(yi, vi, method) {  # global maximum from metafor's logLik at fixed tau2
  ll <- function(t) c(logLik(rma(yi, vi, tau2 = t, method = method)))
  grid <- c(0, 10^seq(-4, 3, length.out = 4001))
  llg <- sapply(grid, ll)
  j <- which.max(llg)
  if (j == 1) return(list(tau2 = 0, loglik = llg[1], loglik0 = llg[1], grid_max = llg[j]))
  o <- optimize(ll, c(grid[j - 1], grid[min(j + 1, length(grid))]), maximum = TRUE, tol = 1e-10)
  list(tau2 = o$maximum, loglik = o$objective, loglik0 = llg[1], grid_max = llg[j])
}

case <- function(name, yi, vi, note = "", order = NULL, groups = NULL, steps_too = FALSE, profile = FALSE) {
  out <- list(name = name, note = note, yi = yi, vi = vi,
              fits = lapply(METHODS, function(m) fit(yi, vi, m)))
  k <- length(yi)
  if (steps_too) {
    l1o <- list(); cu <- list()
    ord <- if (is.null(order)) seq_len(k) else order
    for (m in METHODS) {
      f <- suppressWarnings(rma(yi, vi, method = m, control = ctrl(m)))
      l1o[[m]] <- steps(suppressWarnings(leave1out(f)))
      cu[[m]] <- c(list(added = unname(seq_len(k)[order(ord)])), steps(suppressWarnings(cumul(f, order = ord))))
    }
    out$leave1out <- l1o
    out$cumul <- cu
    out$order <- order
  }
  if (!is.null(groups)) {
    sg <- list()
    lev <- unique(groups)
    for (m in METHODS) {
      per <- lapply(lev, function(g) fit(yi[groups == g], vi[groups == g], m))
      est <- sapply(per, `[[`, "estimate"); se <- sapply(per, `[[`, "se")
      qb <- rma(yi = est, sei = se, method = "FE")
      sg[[m]] <- list(labels = lev, groups_fit = per, q_between = qb$QE, q_between_p = qb$QEp)
    }
    out$groups <- groups
    out$subgroups <- sg
  }
  if (profile) {
    out$profile <- list(REML = profile_max(yi, vi, "REML"), ML = profile_max(yi, vi, "ML"))
    # metafor with its default control (what a user gets)
    out$metafor_default <- list(REML = rma(yi, vi, method = "REML")$tau2, ML = rma(yi, vi, method = "ML")$tau2)
  }
  out
}

cases <- list()
bcg <- escalc("RR", ai = tpos, bi = tneg, ci = cpos, di = cneg, data = dat.bcg)
cases[[length(cases) + 1]] <- case("bcg_logrr", c(bcg$yi), c(bcg$vi),
  "dat.bcg, escalc('RR'): log risk ratios, k = 13; cumul by year; subgroups by alloc",
  order = bcg$year, groups = as.character(bcg$alloc), steps_too = TRUE)
# cumul(rma(method = "ML")) on dat.bcg by year, step 6: metafor's Fisher
# scoring (HE start 0.0029, negative score) ends at tau2 ~ 0; the profile
# maximum of its own logLik is interior.
i6 <- order(bcg$year)[1:6]
bcg_cumul6_ml <- c(profile_max(c(bcg$yi)[i6], c(bcg$vi)[i6], "ML"),
                   list(metafor_tau2 = rma(c(bcg$yi)[i6], c(bcg$vi)[i6], method = "ML")$tau2))
nor <- escalc("SMD", m1i = m1i, sd1i = sd1i, n1i = n1i, m2i = m2i, sd2i = sd2i, n2i = n2i,
              data = dat.normand1999)
cases[[length(cases) + 1]] <- case("normand1999_smd", c(nor$yi), c(nor$vi),
  "dat.normand1999, escalc('SMD'): Hedges' g, k = 9", steps_too = TRUE)
mol <- escalc("ZCOR", ri = ri, ni = ni, data = dat.molloy2014)
cases[[length(cases) + 1]] <- case("molloy2014_zcor", c(mol$yi), c(mol$vi),
  "dat.molloy2014, escalc('ZCOR'): Fisher z, k = 16")
cases[[length(cases) + 1]] <- case("k1", 0.5, 0.1, "k = 1: the study itself")
cases[[length(cases) + 1]] <- case("k2_heterogeneous", c(0.1, 0.9), c(0.02, 0.05), "k = 2, tau2 > 0")
set.seed(20160601)
y8 <- round(rnorm(8, 0.4, 0.05), 3); v8 <- round(runif(8, 0.02, 0.12), 4)
cases[[length(cases) + 1]] <- case("k8_q_below_df", y8, v8, "k = 8 with Q < df: tau2 = 0 for every estimator but SJ")
cases[[length(cases) + 1]] <- case("q_zero", c(0.3, 0.3, 0.3, 0.3), c(0.01, 0.04, 0.02, 0.1),
  "all yi equal: Q = 0 (FE I2 = max(0, -Inf) = 0, H2 = 0)")
set.seed(7)
v10 <- 10^seq(-3, 0, length.out = 10); y10 <- round(rnorm(10, 0.2, sqrt(v10 + 0.05)), 4)
cases[[length(cases) + 1]] <- case("variances_span_1000x", y10, v10, "vi from 0.001 to 1")
# Found by random search (numpy seed 1, k = 6, outliers): the score at the
# HE start is positive but a step overshoots past the interior root, and the
# former Fisher-scoring loop then sent a negative step straight to 0.
cases[[length(cases) + 1]] <- case("reml_overshoot",
  c(6.8240, 0.0485, -6.9048, 8.0800, 0.8455, -0.0855), c(31.419, 0.01916, 20.057, 3.6104, 0.5901, 0.1103),
  "k = 6: metafor REML finds the interior maximum (tau2 ~ 12.2); the former code returned 0", profile = TRUE)
# Found by random search (numpy seed 5, k = 7): HE = 0 and the score at 0 is
# negative, so metafor's Fisher scoring stays at tau2 = 0, yet the
# likelihood has a higher interior maximum.
cases[[length(cases) + 1]] <- case("metafor_stuck_reml",
  c(-5.473, 3.518, -0.635, 0.538, 0.043, -1.578, 0.074), c(79.6193, 0.6153, 12.208, 0.139, 0.012, 24.7533, 0.0104),
  "k = 7: metafor REML stops at 0; the REML maximum is interior", profile = TRUE)
cases[[length(cases) + 1]] <- case("metafor_stuck_ml",
  c(0.783, 7.529, 0.089, 0.881, 3.567, -1.518, -0.336), c(1.8857, 1.3497, 0.0146, 40.4626, 32.0369, 1.0517, 0.5962),
  "k = 7: metafor ML stops at 0; the ML maximum is interior", profile = TRUE)

# 200 random ragged analyses (k = 2..10, every other with vi spanning 1000x)
# for pool_many, every method.
set.seed(1202)
M <- 200
ks <- sample(2:10, M, replace = TRUE)
Y <- matrix(NA_real_, M, 10); V <- matrix(NA_real_, M, 10)
for (i in 1:M) {
  k <- ks[i]
  v <- if (i %% 2 == 0) 10^runif(k, -3, 0) else runif(k, 0.01, 0.5)
  t2 <- sample(c(0, 0.01, 0.1, 1), 1)
  Y[i, 1:k] <- rnorm(k, rnorm(1, 0, 0.5), sqrt(v + t2)); V[i, 1:k] <- v
}
batch_fit <- function(y, v, m) {
  f <- tryCatch(suppressWarnings(rma(y, v, method = m, control = ctrl(m))), error = function(e) NULL)
  if (is.null(f)) return(rep(NA_real_, 12))
  p <- predict(f)
  c(f$beta, f$se, f$pval, f$ci.lb, f$ci.ub, f$tau2, f$I2, f$QE, f$QEp,
    if (is.null(p$pi.lb)) p$ci.lb else p$pi.lb, if (is.null(p$pi.ub)) p$ci.ub else p$pi.ub,
    if (m %in% c("ML", "REML")) c(logLik(f)) else NA)
}
rows <- function(x) lapply(seq_len(nrow(x)), function(i) x[i, ])
batch <- list(columns = c("estimate", "se", "p", "ci_low", "ci_high", "tau2", "i2", "q", "q_p", "pi_low", "pi_high", "loglik"),
              yi = rows(Y), vi = rows(V))
for (m in METHODS)
  batch[[m]] <- rows(t(sapply(1:M, function(i) batch_fit(Y[i, 1:ks[i]], V[i, 1:ks[i]], m))))

out <- list(metafor = as.character(packageVersion("metafor")), R = R.version.string,
            methods = METHODS, cases = cases, bcg_cumul6_ml = bcg_cumul6_ml, random_batch = batch)
num17 <- function(x) {  # jsonlite caps digits at 15; 17 significant digits round-trip a double
  if (is.list(x)) return(lapply(x, num17))
  if (is.numeric(x) || is.logical(x) && all(is.na(x))) {
    s <- ifelse(is.na(x), "null", sprintf("%.17g", as.numeric(x)))
    return(structure(if (length(x) == 1) s else paste0("[", paste(s, collapse = ","), "]"), class = "json"))
  }
  x
}
writeLines(toJSON(num17(out), auto_unbox = TRUE, json_verbatim = TRUE, null = "null", pretty = FALSE),
           "tests/fixtures/estimators_reference.json")
cat("wrote tests/fixtures/estimators_reference.json\n")
