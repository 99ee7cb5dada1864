# Reference values for tests/test_regression.py (meta.regression, meta.regtest).
# Produced with R metafor 3.8.1 (+ metadat, jsonlite):
#   Rscript tests/r/regression_reference.R   (from the repository root)
# writes tests/fixtures/regression_reference.json (17 significant digits).
#
# Iterative estimators are run to convergence, not to metafor's default stopping point:
#   control = list(threshold = 1e-12, tol = 1e-12, maxiter = 1000)
# (threshold: Fisher scoring of ML/REML/EB, default 1e-5; tol: uniroot of PM, default eps^0.25).
# The same control is passed to every fit, permutest() and regtest() refit.
#
# Data: metadat dat.bcg (yi, vi = escalc("RR"); moderators ablat, year, alloc),
# dat.hackshaw1998 (yi, vi as shipped; moderators year, design) and small constructed
# sets for the edge cases (k = p + 1, collinear / constant moderators, tau2 = 0).
suppressMessages({library(metafor); library(jsonlite)})
stopifnot(packageVersion("metafor") == "3.8.1")

CTRL <- list(threshold = 1e-12, tol = 1e-12, maxiter = 1000)
METHODS <- c("FE", "DL", "REML", "ML", "PM", "HE", "HS", "SJ", "EB")
TESTS <- c("z", "knha", "adhoc", "t")

nz <- function(x) if (is.null(x)) NA else x
num17 <- function(x) {  # jsonlite caps digits at 15; 17 significant digits round-trip a double
  if (is.list(x)) return(lapply(x, num17))   # (matrices are written as flat vectors: vb is symmetric)
  if (is.numeric(x) || is.logical(x) && all(is.na(x))) {
    s <- ifelse(is.na(x), "null", sprintf("%.17g", as.numeric(x)))
    return(structure(if (length(x) == 1) s else paste0("[", paste(s, collapse = ","), "]"), class = "json"))
  }
  x
}

fitlist <- function(r) {
  list(method = r$method, test = r$test, k = r$k, p = r$p, names = colnames(r$X),
       beta = c(r$beta), se = r$se, zval = r$zval, pval = r$pval, ci_lb = r$ci.lb, ci_ub = r$ci.ub,
       vb = unname(r$vb), tau2 = r$tau2, se_tau2 = nz(r$se.tau2), I2 = r$I2, H2 = r$H2, R2 = nz(r$R2),
       QE = r$QE, QEp = r$QEp, QM = r$QM, QMp = r$QMp, QMdf = r$QMdf, ddf = nz(r$ddf), s2w = r$s2w,
       weights = unname(weights(r)), dropped = as.list(names(r$coef.na)[r$coef.na]))
}

bcg <- escalc("RR", ai = tpos, bi = tneg, ci = cpos, di = cneg, data = dat.bcg)
bcg$ni <- with(dat.bcg, tpos + tneg + cpos + cneg)
hack <- dat.hackshaw1998

# ---------------------------------------------------------------- every method x test on five models
models <- list(
  list(name = "bcg_ablat", data = "bcg", formula = "~ ablat"),
  list(name = "bcg_ablat_year_alloc", data = "bcg", formula = "~ ablat + year + alloc"),
  list(name = "bcg_no_intercept_alloc", data = "bcg", formula = "~ 0 + alloc"),
  # no intercept and no constant in the column space: metafor's tau2 estimators and QE use the
  # centred outcomes y - mean(y) (rma.uni's Ymc), which matters only here
  list(name = "bcg_no_intercept_ablat", data = "bcg", formula = "~ 0 + ablat"),
  list(name = "hackshaw_year_design", data = "hack", formula = "~ year + design")
)
grid <- list()
for (mdl in models) {
  d <- if (mdl$data == "bcg") bcg else hack
  fits <- list()
  for (m in METHODS) for (t in TESTS) {
    r <- suppressWarnings(rma(yi, vi, mods = as.formula(mdl$formula), data = d, method = m, test = t, control = CTRL))
    fits[[length(fits) + 1]] <- fitlist(r)
  }
  grid[[length(grid) + 1]] <- list(name = mdl$name, data = mdl$data, formula = mdl$formula, fits = fits)
}

# ---------------------------------------------------------------- predict
pred <- list()
for (t in c("z", "knha")) for (pt in c("default", "simple", "t", "riley")) {
  r <- rma(yi, vi, mods = ~ ablat, data = bcg, method = "REML", test = t, control = CTRL)
  p <- predict(r, newmods = c(10, 30, 50), pi.type = pt)
  pred[[length(pred) + 1]] <- list(formula = "~ ablat", method = "REML", test = t, pi = pt, newmods = c(10, 30, 50),
                                   pred = p$pred, se = p$se, ci_lb = p$ci.lb, ci_ub = p$ci.ub,
                                   pi_lb = p$pi.lb, pi_ub = p$pi.ub)
}
r <- rma(yi, vi, mods = ~ ablat + alloc, data = bcg, method = "DL", control = CTRL)
nm <- rbind(c(30, 1, 0), c(50, 0, 1), c(20, 0, 0))
p <- predict(r, newmods = nm)
pred_factor <- list(formula = "~ ablat + alloc", method = "DL", newmods = lapply(1:3, function(i) nm[i, ]),
                    new_data = list(ablat = c(30, 50, 20), alloc = c("random", "systematic", "alternate")),
                    pred = p$pred, se = p$se, ci_lb = p$ci.lb, ci_ub = p$ci.ub, pi_lb = p$pi.lb, pi_ub = p$pi.ub)
p <- predict(r)
pred_fitted <- list(pred = p$pred, se = p$se, ci_lb = p$ci.lb, ci_ub = p$ci.ub, pi_lb = p$pi.lb, pi_ub = p$pi.ub)
p <- predict(r, newmods = nm, intercept = FALSE)
pred_noint <- list(pred = p$pred, se = p$se)

# ---------------------------------------------------------------- permutest (exact)
perm <- list()
b6 <- bcg[1:6, ]
for (cfg in list(c("REML", "z"), c("DL", "knha"), c("FE", "z"))) {
  r <- rma(yi, vi, mods = ~ ablat, data = b6, method = cfg[1], test = cfg[2], control = CTRL)
  pt <- permutest(r, iter = 1000, control = CTRL)
  perm[[length(perm) + 1]] <- list(data = "bcg[1:6]", formula = "~ ablat", method = cfg[1], test = cfg[2],
                                   exact = TRUE, exact_iter = pt$exact.iter, pval = pt$pval, QMp = pt$QMp,
                                   QM = pt$QM, zval = pt$zval)
}
b8 <- bcg[1:8, ]
r <- rma(yi, vi, data = b8, method = "REML", control = CTRL)
pt <- permutest(r, iter = 1000, control = CTRL)
perm_intonly <- list(data = "bcg[1:8]", method = "REML", test = "z", exact_iter = pt$exact.iter,
                     pval = pt$pval, QMp = pt$QMp)
r <- rma(yi, vi, mods = ~ ablat + alloc, data = b8, method = "DL", control = CTRL)
set.seed(20261208)
pt <- permutest(r, iter = 1000, control = CTRL)  # 8! = 40320 distinct orders > iter: random, not compared exactly
perm_factor <- list(data = "bcg[1:8]", formula = "~ ablat + alloc", method = "DL", test = "z",
                    exact = pt$exact.iter <= 1000, exact_iter = pt$exact.iter, pval = pt$pval, QMp = pt$QMp)
# random permutations on all 13 studies: R's generator differs from numpy's, so only the
# permutation distribution is compared (20000 permutations here for a precise reference)
set.seed(20261207)
r <- rma(yi, vi, mods = ~ ablat, data = bcg, method = "DL", control = CTRL)
pt <- permutest(r, iter = 20000, control = CTRL)
perm_random <- list(data = "bcg", formula = "~ ablat", method = "DL", iter = 20000, exact = FALSE,
                    exact_iter = pt$exact.iter, pval = pt$pval, QMp = pt$QMp)

# ---------------------------------------------------------------- regtest
reg <- list()
for (m in c("REML", "DL", "FE")) for (pr in c("sei", "vi", "ni", "ninv", "sqrtni", "sqrtninv")) for (mod in c("rma", "lm")) {
  r <- rma(yi, vi, data = bcg, method = m, control = CTRL)
  rt <- regtest(r, model = mod, predictor = pr, ni = bcg$ni)
  reg[[length(reg) + 1]] <- list(method = m, test = "z", model = mod, predictor = pr, zval = rt$zval, pval = rt$pval,
                                 dfs = nz(rt$dfs), est = nz(rt$est), ci_lb = nz(rt$ci.lb), ci_ub = nz(rt$ci.ub))
}
r <- rma(yi, vi, data = bcg, method = "REML", test = "knha", control = CTRL)
rt <- regtest(r)
reg_knha <- list(method = "REML", test = "knha", zval = rt$zval, pval = rt$pval, dfs = rt$dfs, est = rt$est,
                 ci_lb = rt$ci.lb, ci_ub = rt$ci.ub)
r <- rma(yi, vi, mods = ~ ablat, data = bcg, method = "REML", control = CTRL)
rt <- regtest(r)
reg_mods <- list(formula = "~ ablat", method = "REML", zval = rt$zval, pval = rt$pval, beta = c(rt$fit$beta),
                 tau2 = rt$fit$tau2)
rt <- regtest(bcg$yi, bcg$vi)  # the vector form passes no control: REML to metafor's default threshold 1e-5
reg_vector <- list(zval = rt$zval, pval = rt$pval, est = rt$est, ci_lb = rt$ci.lb, ci_ub = rt$ci.ub,
                   method = rt$method)

# ---------------------------------------------------------------- edge cases
edge <- list()
# k = p + 1: three studies, one moderator
b3 <- bcg[c(1, 5, 9), ]
for (m in METHODS) {
  r <- suppressWarnings(rma(yi, vi, mods = ~ ablat, data = b3, method = m, control = CTRL))
  edge[[length(edge) + 1]] <- c(list(case = "k_eq_p_plus_1", yi = b3$yi, vi = b3$vi, mods = b3$ablat), fitlist(r))
}
# collinear moderators: ablat and 2 * ablat (metafor drops the second with a warning)
r <- suppressWarnings(rma(yi, vi, mods = cbind(ablat = bcg$ablat, ablat2 = 2 * bcg$ablat), data = bcg, control = CTRL))
edge[[length(edge) + 1]] <- c(list(case = "collinear", yi = bcg$yi, vi = bcg$vi), fitlist(r))
# constant moderator beside the intercept: dropped
r <- suppressWarnings(rma(yi, vi, mods = cbind(ablat = bcg$ablat, const = rep(5, 13)), data = bcg, control = CTRL))
edge[[length(edge) + 1]] <- c(list(case = "constant", yi = bcg$yi, vi = bcg$vi), fitlist(r))
# tau2 at the boundary: outcomes close to a line, large sampling variances
x <- 1:8
yb <- 0.1 * x + c(0.02, -0.01, 0.03, -0.02, 0.01, -0.03, 0.02, -0.01)
vb <- c(0.5, 0.4, 0.6, 0.5, 0.3, 0.5, 0.45, 0.55)
for (m in METHODS) {
  r <- rma(yb, vb, mods = x, method = m, control = CTRL)
  edge[[length(edge) + 1]] <- c(list(case = "tau2_zero", yi = yb, vi = vb, mods = x), fitlist(r))
}

out <- list(
  metafor = as.character(packageVersion("metafor")),
  data = list(bcg = list(yi = bcg$yi, vi = bcg$vi, ablat = bcg$ablat, year = bcg$year, alloc = bcg$alloc,
                         ni = bcg$ni, author = bcg$author),
              hack = list(yi = hack$yi, vi = hack$vi, year = hack$year, design = hack$design)),
  grid = grid, predict = pred, predict_factor = pred_factor, predict_fitted = pred_fitted,
  predict_noint = pred_noint,
  permutest = perm, permutest_intonly = perm_intonly, permutest_factor = perm_factor, permutest_random = perm_random,
  regtest = reg, regtest_knha = reg_knha, regtest_mods = reg_mods, regtest_vector = reg_vector,
  edge = edge
)
writeLines(toJSON(num17(out), auto_unbox = TRUE, json_verbatim = TRUE, null = "null", pretty = FALSE),
           "tests/fixtures/regression_reference.json")
cat("wrote tests/fixtures/regression_reference.json\n")
