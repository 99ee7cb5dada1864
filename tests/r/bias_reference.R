# Reference values for meta.bias (tests/test_bias.py), produced with metafor.
#
#   Rscript tests/r/bias_reference.R      (run from the repository root)
#
# writes tests/fixtures/bias_reference.json with 17 significant digits:
#   - "egger": metafor regtest(model = "lm", predictor = "sei") on each data set,
#     plus the Egger et al. (1997) standard-normal-deviate regression
#     lm(yi/sei ~ I(1/sei)) to show that the two are the same test;
#   - "trimfill": metafor trimfill() for several data sets x method x estimator
#     (x side, where forced), with the pooled fit before and after filling;
#   - "trimfill_errors": cases where metafor's trimfill() stops with an error;
#   - "side_fit": rma(yi, vi, mods = sqrt(vi), method), whose sei coefficient
#     trimfill() uses to choose the side when side is not given.
# Data sets come from metadat (loaded with metafor); effect sizes from escalc().

suppressMessages(library(metafor))
suppressMessages(library(jsonlite))

stopifnot(packageVersion("metafor") == "3.8.1")

datasets <- list(
  hackshaw1998 = list(
    note = "dat.hackshaw1998: log OR, lung cancer and ETS; yi, vi as shipped",
    dat = dat.hackshaw1998[, c("yi", "vi")]),
  bcg = list(
    note = "dat.bcg: escalc(measure = 'RR', ai = tpos, bi = tneg, ci = cpos, di = cneg)",
    dat = escalc("RR", ai = tpos, bi = tneg, ci = cpos, di = cneg, data = dat.bcg)),
  normand1999 = list(
    note = "dat.normand1999: escalc(measure = 'SMD', m1i, sd1i, n1i, m2i, sd2i, n2i)",
    dat = escalc("SMD", m1i = m1i, sd1i = sd1i, n1i = n1i, m2i = m2i, sd2i = sd2i,
                 n2i = n2i, data = dat.normand1999)),
  egger2001 = list(
    note = "dat.egger2001: escalc(measure = 'OR', ai, n1i, ci, n2i)",
    dat = escalc("OR", ai = ai, n1i = n1i, ci = ci, n2i = n2i, data = dat.egger2001)),
  molloy2014 = list(
    note = "dat.molloy2014: escalc(measure = 'ZCOR', ri, ni)",
    dat = escalc("ZCOR", ri = ri, ni = ni, data = dat.molloy2014)),
  raudenbush1985 = list(
    note = "dat.raudenbush1985: SMD, yi, vi as shipped",
    dat = dat.raudenbush1985[, c("yi", "vi")]),
  li2007 = list(
    note = "dat.li2007: escalc(measure = 'OR', ai, n1i, ci, n2i)",
    dat = escalc("OR", ai = ai, n1i = n1i, ci = ci, n2i = n2i, data = dat.li2007)),
  konstantopoulos2011 = list(
    note = "dat.konstantopoulos2011: SMD, yi, vi as shipped (sign of the sei slope differs FE vs DL)",
    dat = dat.konstantopoulos2011[, c("yi", "vi")]),
  ties = list(
    note = "synthetic: repeated yi values (ties in |yi - beta| ranks) and equal vi",
    dat = data.frame(yi = c(0.1, 0.5, 0.5, 0.9, 0.3, 0.5, 1.2, 0.9, 0.1, 0.7),
                     vi = c(0.04, 0.09, 0.09, 0.16, 0.04, 0.01, 0.25, 0.16, 0.09, 0.09))),
  crossties = list(
    note = paste("synthetic: equal vi, dyadic yi, so |yi - beta| ties across the two sides of beta",
                 "(R's rank(ties.method = 'first') decides k0); side must be given"),
    dat = data.frame(yi = c(1.5, 0, -0.5, 0.5, -0.75, -0.5, 1.75, 1), vi = rep(0.25, 8))),
  two = list(
    note = "synthetic: k = 2 (trimfill needs side given; regtest needs k >= 3)",
    dat = data.frame(yi = c(0.1, 0.5), vi = c(0.04, 0.09)))
)
equal_vi <- c("crossties", "two")  # regtest() and the side regression need varying vi, k >= 3

for (nm in names(datasets)) {
  d <- datasets[[nm]]$dat
  d <- d[!is.na(d$yi) & !is.na(d$vi), ]
  datasets[[nm]]$yi <- as.numeric(d$yi)
  datasets[[nm]]$vi <- as.numeric(d$vi)
}

# metafor stops REML's Fisher scoring at |change in tau2| < 1e-5 and PM's
# uniroot() at tol = .Machine$double.eps^0.25 (~1.2e-4); meta.pool solves both
# to machine precision. For a like-for-like comparison, iterative methods are
# run to convergence (trimfill() passes `control` on to each of its fits).
ctrl <- function(method) {
  if (method %in% c("REML", "PM")) list(threshold = 1e-12, tol = 1e-12, maxiter = 1000)
  else list()
}

fitlist <- function(r) {
  list(k = r$k, estimate = as.numeric(r$beta[1]), se = r$se, zval = r$zval,
       pval = r$pval, ci_lb = r$ci.lb, ci_ub = r$ci.ub, tau2 = r$tau2,
       I2 = r$I2, H2 = r$H2, QE = r$QE, QEp = r$QEp)
}

# --- Egger / regtest -------------------------------------------------------
egger <- list()
for (nm in setdiff(names(datasets), equal_vi)) {
  yi <- datasets[[nm]]$yi
  vi <- datasets[[nm]]$vi
  rt <- regtest(yi, vi, model = "lm")   # predictor = "sei" is the default
  cf <- coef(summary(rt$fit))
  sei <- sqrt(vi)
  snd <- coef(summary(lm(I(yi / sei) ~ I(1 / sei))))
  egger[[nm]] <- list(
    dataset = nm, yi = yi, vi = vi,
    zval = as.numeric(rt$zval), pval = as.numeric(rt$pval), dfs = rt$dfs,
    est = as.numeric(rt$est), ci_lb = as.numeric(rt$ci.lb), ci_ub = as.numeric(rt$ci.ub),
    coef_intrcpt = cf[1, 1], se_intrcpt = cf[1, 2],
    coef_sei = cf[2, 1], se_sei = cf[2, 2],
    egger1997_intercept = snd[1, 1], egger1997_intercept_se = snd[1, 2],
    egger1997_t = snd[1, 3], egger1997_slope = snd[2, 1])
}

# --- side choice: rma(yi, vi, mods = sqrt(vi), method) as in trimfill.rma.uni ---
side_fit <- list()
for (nm in setdiff(names(datasets), equal_vi)) for (method in c("FE", "DL", "REML", "PM")) {
  yi <- datasets[[nm]]$yi
  vi <- datasets[[nm]]$vi
  r <- suppressWarnings(rma(yi, vi, mods = sqrt(vi), method = method, control = ctrl(method)))
  side_fit[[length(side_fit) + 1]] <- list(
    dataset = nm, method = method, yi = yi, vi = vi,
    intrcpt = as.numeric(r$beta[1]), sei = as.numeric(r$beta[2]), tau2 = r$tau2)
}

# --- trim and fill ---------------------------------------------------------
cases <- list(
  list("hackshaw1998", "FE", "L0"), list("hackshaw1998", "DL", "L0"),
  list("hackshaw1998", "REML", "L0"), list("hackshaw1998", "DL", "R0"),
  list("hackshaw1998", "DL", "Q0"), list("hackshaw1998", "FE", "Q0"),
  list("bcg", "FE", "L0"), list("bcg", "DL", "L0"), list("bcg", "REML", "L0"),
  list("bcg", "DL", "R0"), list("bcg", "FE", "Q0"),
  list("normand1999", "FE", "L0"), list("normand1999", "DL", "L0"),
  list("normand1999", "DL", "R0"),
  list("egger2001", "FE", "L0"), list("egger2001", "DL", "L0"),
  list("egger2001", "REML", "R0"),
  list("molloy2014", "FE", "L0"), list("molloy2014", "DL", "L0"),
  list("molloy2014", "DL", "Q0"),
  list("raudenbush1985", "DL", "L0"), list("raudenbush1985", "REML", "Q0"),
  list("li2007", "FE", "L0"), list("li2007", "DL", "L0"), list("li2007", "DL", "R0"),
  list("ties", "FE", "L0"), list("ties", "DL", "L0"), list("ties", "DL", "R0"),
  list("konstantopoulos2011", "FE", "L0"), list("konstantopoulos2011", "DL", "L0"),
  list("konstantopoulos2011", "REML", "L0"), list("konstantopoulos2011", "PM", "L0"),
  list("hackshaw1998", "PM", "L0"), list("bcg", "PM", "R0"),
  list("crossties", "FE", "L0", "left"), list("crossties", "FE", "R0", "left"),
  list("crossties", "FE", "Q0", "left"), list("crossties", "FE", "L0", "right"),
  list("crossties", "FE", "Q0", "right"), list("two", "DL", "L0", "left"),
  # side forced against metafor's own choice
  list("hackshaw1998", "DL", "L0", "right"), list("bcg", "FE", "L0", "left"),
  list("molloy2014", "FE", "R0", "right")
)

trim <- list()
errors <- list()
for (cs in cases) {
  nm <- cs[[1]]; method <- cs[[2]]; estimator <- cs[[3]]
  side <- if (length(cs) > 3) cs[[4]] else NULL
  yi <- datasets[[nm]]$yi
  vi <- datasets[[nm]]$vi
  orig <- rma(yi, vi, method = method, control = ctrl(method))
  tf <- if (is.null(side)) trimfill(orig, estimator = estimator, control = ctrl(method))
        else trimfill(orig, estimator = estimator, side = side, control = ctrl(method))
  trim[[length(trim) + 1]] <- list(
    dataset = nm, method = method, estimator = estimator,
    side_arg = if (is.null(side)) NA else side,
    yi = yi, vi = vi,
    k0 = tf$k0, se_k0 = tf$se.k0, side = tf$side,
    p_k0 = if (is.na(tf$p.k0)) NA else tf$p.k0,
    yi_all = as.numeric(tf$yi), vi_all = as.numeric(tf$vi), fill = tf$fill,
    original = fitlist(orig), result = fitlist(tf))
}

# metafor stops: for Q0 when 2k^2 - 4 Sr + 1/4 < 0 (sqrt of a negative number),
# and when the side must be chosen but all vi are equal (sei slope is NA)
for (cs in list(list("egger2001", "DL", "Q0", "Q0_undefined"),
                list("egger2001", "FE", "Q0", "Q0_undefined"),
                list("crossties", "FE", "L0", "equal_vi"))) {
  nm <- cs[[1]]
  yi <- datasets[[nm]]$yi
  vi <- datasets[[nm]]$vi
  msg <- tryCatch({
    suppressWarnings(trimfill(rma(yi, vi, method = cs[[2]]), estimator = cs[[3]]))
    NA
  }, error = function(e) conditionMessage(e))
  stopifnot(!is.na(msg))
  errors[[length(errors) + 1]] <- list(dataset = nm, method = cs[[2]],
                                       estimator = cs[[3]], reason = cs[[4]], yi = yi, vi = vi,
                                       r_error = msg)
}

out <- list(
  generated_by = "tests/r/bias_reference.R",
  r_version = R.version.string,
  metafor_version = as.character(packageVersion("metafor")),
  metadat_version = as.character(packageVersion("metadat")),
  datasets = lapply(datasets, function(x) x$note),
  egger = unname(egger), trimfill = trim, trimfill_errors = errors)

# jsonlite prints at most 15 significant digits; write every double with
# 17 ("%.17g"), which round-trips exactly, as verbatim JSON.
num17 <- function(x) {
  if (is.list(x)) return(lapply(x, num17))
  if (is.double(x)) {
    s <- ifelse(is.na(x), "null", sprintf("%.17g", x))
    names(s) <- NULL
    if (length(x) == 1L && is.null(attr(x, "vector"))) return(structure(s, class = "json"))
    return(structure(paste0("[", paste(s, collapse = ", "), "]"), class = "json"))
  }
  x
}
vec <- function(x) structure(as.numeric(x), vector = TRUE)
for (nm in names(egger)) {
  egger[[nm]]$yi <- vec(egger[[nm]]$yi); egger[[nm]]$vi <- vec(egger[[nm]]$vi)
}
for (i in seq_along(trim)) for (f in c("yi", "vi", "yi_all", "vi_all"))
  trim[[i]][[f]] <- vec(trim[[i]][[f]])
for (i in seq_along(side_fit)) for (f in c("yi", "vi"))
  side_fit[[i]][[f]] <- vec(side_fit[[i]][[f]])
for (i in seq_along(errors)) for (f in c("yi", "vi"))
  errors[[i]][[f]] <- vec(errors[[i]][[f]])
out$egger <- num17(unname(egger))
out$trimfill <- num17(trim)
out$trimfill_errors <- num17(errors)
out$side_fit <- num17(side_fit)

dir.create("tests/fixtures", showWarnings = FALSE, recursive = TRUE)
writeLines(toJSON(out, auto_unbox = TRUE, pretty = TRUE, na = "null", json_verbatim = TRUE),
           "tests/fixtures/bias_reference.json")
cat("wrote tests/fixtures/bias_reference.json:", length(egger), "regtest,",
    length(trim), "trimfill,", length(errors), "error cases\n")
