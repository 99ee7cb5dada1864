# Reference values for tests/test_pool.py and tests/test_pool_many.py.
# Produced with R metafor 3.8.1 (+ metadat, jsonlite):
#   Rscript tests/r/pool_reference.R   (from the repository root)
# writes tests/fixtures/pool_reference.json (17 significant digits).
#
# Iterative estimators are run with tight control settings so that the
# reference is the converged value, not metafor's default stopping point:
#   REML: control = list(threshold = 1e-12, maxiter = 1000)   (default 1e-5, 100)
#   PM:   control = list(tol = 1e-12)                          (uniroot tol, default eps^0.25)
# Prediction intervals: metafor predict() ("pi_z"); FE models have no PI in
# metafor, so pi_z = CI there (tau2 = 0).  "pi_t" = Higgins, Thompson &
# Spiegelhalter (2009): est +- qt(1 - alpha/2, k - 2) * sqrt(se^2 + tau2),
# computed here from metafor's est, se and tau2 (NA when k < 3).
suppressMessages({library(metafor); library(jsonlite)})
stopifnot(packageVersion("metafor") == "3.8.1")

ctrl <- function(method) switch(method,
  REML = list(threshold = 1e-12, maxiter = 1000),
  PM = list(tol = 1e-12),
  list())

fit <- function(yi, vi, method, test = "z", level = 0.95) {
  f <- suppressWarnings(rma(yi, vi, method = method, test = test, level = 100 * level,
                            control = ctrl(method)))
  p <- predict(f)
  k <- f$k
  pil <- if (is.null(p$pi.lb)) p$ci.lb else p$pi.lb
  piu <- if (is.null(p$pi.ub)) p$ci.ub else p$pi.ub
  crit_t <- if (k >= 3) qt(1 - (1 - level) / 2, k - 2) else NA
  s <- sqrt(f$se^2 + f$tau2)
  list(method = method, test = ifelse(test == "knha", "hksj", "z"), test_used = f$test, level = level,
       k = k, estimate = c(f$beta), se = f$se, stat = f$zval, p = f$pval,
       ci_low = f$ci.lb, ci_high = f$ci.ub, tau2 = f$tau2, tau = sqrt(f$tau2),
       i2 = f$I2, h2 = f$H2, q = f$QE, q_df = k - 1, q_p = f$QEp,
       pi_low = pil, pi_high = piu,
       pi_t_low = c(f$beta) - crit_t * s, pi_t_high = c(f$beta) + crit_t * s,
       weights = unname(weights(f)))
}

steps <- function(x) {  # leave1out / cumul output as a list of columns
  x <- as.data.frame(x)
  list(estimate = x$estimate, se = x$se, stat = x[[grep("zval|tval", names(x))[1]]], p = x$pval,
       ci_low = x$ci.lb, ci_high = x$ci.ub, q = x$Q, q_p = x$Qp, tau2 = x$tau2, i2 = x$I2, h2 = x$H2)
}

case <- function(name, yi, vi, note = "", order = NULL, groups = NULL, levels = c(0.95)) {
  fits <- list()
  for (m in c("FE", "DL", "REML", "PM")) for (t in c("z", "knha")) for (lv in levels)
    fits[[length(fits) + 1]] <- fit(yi, vi, m, t, lv)
  out <- list(name = name, note = note, yi = yi, vi = vi, fits = fits)
  k <- length(yi)
  if (k >= 2) {
    l1o <- list(); cu <- list()
    for (m in c("FE", "DL", "REML", "PM")) for (t in c("z", "knha")) {
      f <- suppressWarnings(rma(yi, vi, method = m, test = t, control = ctrl(m)))
      l1o[[length(l1o) + 1]] <- c(list(method = m, test = ifelse(t == "knha", "hksj", "z")),
                                  steps(suppressWarnings(leave1out(f))))
      ord <- if (is.null(order)) seq_len(k) else order
      cu[[length(cu) + 1]] <- c(list(method = m, test = ifelse(t == "knha", "hksj", "z"),
                                     added = unname(seq_len(k)[order(ord)])),
                                steps(suppressWarnings(cumul(f, order = ord))))
    }
    out$leave1out <- l1o
    out$cumul <- cu
    out$order <- order
  }
  if (!is.null(groups)) {
    sg <- list()
    for (m in c("FE", "DL", "REML", "PM")) {
      lev <- unique(groups)
      per <- lapply(lev, function(g) fit(yi[groups == g], vi[groups == g], m))
      est <- sapply(per, `[[`, "estimate"); se <- sapply(per, `[[`, "se")
      qb <- rma(yi = est, sei = se, method = "FE")
      sg[[length(sg) + 1]] <- list(method = m, labels = lev, groups_fit = per,
                                   q_between = qb$QE, q_between_df = length(lev) - 1,
                                   q_between_p = qb$QEp)
    }
    out$groups <- groups
    out$subgroups <- sg
  }
  out
}

cases <- list()

bcg <- escalc("RR", ai = tpos, bi = tneg, ci = cpos, di = cneg, data = dat.bcg)
cases[[length(cases) + 1]] <- case("bcg_logrr", c(bcg$yi), c(bcg$vi),
  "dat.bcg, escalc('RR'): log risk ratios, k = 13; cumul by year; subgroups by alloc",
  order = bcg$year, groups = as.character(bcg$alloc), levels = c(0.95, 0.90))

nor <- escalc("SMD", m1i = m1i, sd1i = sd1i, n1i = n1i, m2i = m2i, sd2i = sd2i, n2i = n2i,
              data = dat.normand1999)
cases[[length(cases) + 1]] <- case("normand1999_smd", c(nor$yi), c(nor$vi),
  "dat.normand1999, escalc('SMD'): Hedges' g, k = 9; cumul in reverse order",
  order = rev(seq_len(nrow(nor))), groups = ifelse(seq_len(nrow(nor)) <= 4, "first", "rest"))

mol <- escalc("ZCOR", ri = ri, ni = ni, data = dat.molloy2014)
cases[[length(cases) + 1]] <- case("molloy2014_zcor", c(mol$yi), c(mol$vi),
  "dat.molloy2014, escalc('ZCOR'): Fisher z, k = 16")

cases[[length(cases) + 1]] <- case("k1", 0.5, 0.1, "k = 1: the study itself, Q = 0, p = 1, I2 = 0, H2 = 1")
cases[[length(cases) + 1]] <- case("k2_heterogeneous", c(0.1, 0.9), c(0.02, 0.05), "k = 2, tau2 > 0")
cases[[length(cases) + 1]] <- case("k2_homogeneous", c(0.30, 0.35), c(0.04, 0.06), "k = 2, Q < df, tau2 = 0")

set.seed(20160601)
y8 <- round(rnorm(8, 0.4, 0.05), 3); v8 <- round(runif(8, 0.02, 0.12), 4)
cases[[length(cases) + 1]] <- case("k8_q_below_df", y8, v8,
  "k = 8 with Q < df: every estimator must give tau2 = 0 (statsmodels 0.15 chi2 gives tau2 < 0)")

set.seed(7)
v10 <- 10^seq(-3, 0, length.out = 10); y10 <- round(rnorm(10, 0.2, sqrt(v10 + 0.05)), 4)
cases[[length(cases) + 1]] <- case("variances_span_1000x", y10, v10, "vi from 0.001 to 1")

y3 <- c(0.1, 0.25, 0.6, 0.2); v3 <- c(0.05, 0.05, 0.05, 0.05)
cases[[length(cases) + 1]] <- case("k4_equal_variances", y3, v3, "equal vi (DL = HE = PM closed form)",
  order = c(2001, 1999, 2001, 2000))

# REML case where metafor's default Fisher scoring stops with
# "Fisher scoring algorithm did not converge" (found by random search,
# seed 2026, draw 1260); reference from stepadj = 0.5, maxiter = 1000.
yf <- c(0.434927616850558, 1.07565788044664, -2.85116446300042, 1.36580083758791, 0.183059907345509)
vf <- c(0.0900270317217609, 0.212073067573452, 1.43975009655183, 5.72351810454382, 0.00320320778778919)
err <- tryCatch({rma(yf, vf, method = "REML"); "converged"}, error = function(e) conditionMessage(e))
ref <- rma(yf, vf, method = "REML", control = list(stepadj = 0.5, threshold = 1e-12, maxiter = 1000))
grid <- seq(0, 3, by = 1e-3)
llg <- sapply(grid, function(t) logLik(rma(yf, vf, tau2 = t, method = "REML")))
reml_fail <- list(yi = yf, vi = vf, metafor_default = err, tau2 = ref$tau2, estimate = c(ref$beta),
                  se = ref$se, loglik = c(logLik(ref)), grid_argmax = grid[which.max(llg)],
                  grid_max = max(llg))

# 300 random ragged analyses (k = 2..12; every third with vi spanning 1000x)
# for pool_many: one row per analysis, NaN padding to 12 columns.  REML
# falls back to stepadj = 0.25 if metafor's Fisher scoring fails.
set.seed(4242)
M <- 300
ks <- sample(2:12, M, replace = TRUE)
Y <- matrix(NA_real_, M, 12); V <- matrix(NA_real_, M, 12)
for (i in 1:M) {
  k <- ks[i]
  v <- if (i %% 3 == 0) 10^runif(k, -3, 0) else runif(k, 0.01, 0.5)
  t2 <- sample(c(0, 0.01, 0.1, 1), 1)
  Y[i, 1:k] <- rnorm(k, rnorm(1, 0, 0.5), sqrt(v + t2)); V[i, 1:k] <- v
}
batch_fit <- function(y, v, m) {
  f <- tryCatch(rma(y, v, method = m, control = ctrl(m)), error = function(e) NULL)
  if (is.null(f) && m == "REML")
    f <- tryCatch(rma(y, v, method = m, control = list(threshold = 1e-12, maxiter = 10000, stepadj = 0.25)),
                  error = function(e) NULL)
  if (is.null(f)) return(rep(NA_real_, 11))
  p <- predict(f)
  c(f$beta, f$se, f$pval, f$ci.lb, f$ci.ub, f$tau2, f$I2, f$QE, f$QEp,
    if (is.null(p$pi.lb)) p$ci.lb else p$pi.lb, if (is.null(p$pi.ub)) p$ci.ub else p$pi.ub)
}
rows <- function(x) lapply(seq_len(nrow(x)), function(i) x[i, ])
batch <- list(columns = c("estimate", "se", "p", "ci_low", "ci_high", "tau2", "i2", "q", "q_p", "pi_low", "pi_high"),
              yi = rows(Y), vi = rows(V))
for (m in c("FE", "DL", "REML", "PM"))
  batch[[m]] <- rows(t(sapply(1:M, function(i) batch_fit(Y[i, 1:ks[i]], V[i, 1:ks[i]], m))))

out <- list(metafor = as.character(packageVersion("metafor")), R = R.version.string,
            cases = cases, reml_fail = reml_fail, random_batch = batch)
# jsonlite caps digits at 15; write every number with 17 significant digits
# (round-trips a double exactly) as verbatim JSON.
num17 <- function(x) {
  if (is.list(x)) return(lapply(x, num17))
  if (is.numeric(x) || is.logical(x) && all(is.na(x))) {
    s <- ifelse(is.na(x), "null", sprintf("%.17g", as.numeric(x)))
    return(structure(if (length(x) == 1) s else paste0("[", paste(s, collapse = ","), "]"), class = "json"))
  }
  x
}
writeLines(toJSON(num17(out), auto_unbox = TRUE, json_verbatim = TRUE, null = "null", pretty = FALSE),
           "tests/fixtures/pool_reference.json")
cat("wrote tests/fixtures/pool_reference.json\n")
