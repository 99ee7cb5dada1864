# Reference values for tests/test_input_rules.py: which test and level the
# fits of R metafor 3.8.1 trimfill() use, and what regtest()/trimfill() do
# when the effects carry no information.
#   Rscript tests/r/trimfill_tests_reference.R   (from the repository root)
# writes tests/fixtures/trimfill_tests_reference.json (17 significant digits).
#
# "trimfill": rma(yi, vi, method, test, level) and trimfill() of it, for
#   test in z / knha / t and level 95 / 90. With k0 = 0 metafor returns the
#   user's model itself (res <- x in trimfill.rma.uni); with k0 > 0 it refits
#   rma.uni(yi.fill, vi.fill, method = x$method, ...) -- test and level are not
#   passed on, so the filled fit is a z-test at level 95.
# "no_information": regtest(model = "lm") on five identical effects (metafor
#   prints a t-test of rounding noise; R's summary.lm warns "essentially
#   perfect fit"), on all-equal vi (metafor stops), and trimfill() on identical
#   effects (metafor stops: the algorithm does not converge).
# REML: control = list(threshold = 1e-12, maxiter = 1000); PM: control = list(tol = 1e-12).
suppressMessages({library(metafor); library(jsonlite)})
stopifnot(packageVersion("metafor") == "3.8.1")

ctrl <- function(method) switch(method,
  REML = list(threshold = 1e-12, maxiter = 1000),
  PM = list(tol = 1e-12),
  list())

fitlist <- function(r) list(k = r$k, test = r$test, level = 1 - r$level, estimate = c(r$beta), se = r$se,
                            stat = r$zval, p = r$pval, ci_low = r$ci.lb, ci_high = r$ci.ub, tau2 = r$tau2)

bcg <- escalc(measure = "RR", ai = tpos, bi = tneg, ci = cpos, di = cneg, data = dat.bcg)
nor <- escalc(measure = "SMD", m1i = m1i, sd1i = sd1i, n1i = n1i, m2i = m2i, sd2i = sd2i, n2i = n2i,
              data = dat.normand1999)
egg <- escalc("OR", ai = ai, n1i = n1i, ci = ci, n2i = n2i, data = dat.egger2001)
data <- list(
  normand1999 = list(note = "dat.normand1999, escalc SMD (k0 = 0 for every method)", yi = c(nor$yi), vi = c(nor$vi)),
  bcg = list(note = "dat.bcg, escalc RR (k0 = 1 for DL, 0 for PM)", yi = c(bcg$yi), vi = c(bcg$vi)),
  egger2001 = list(note = "dat.egger2001, escalc OR (k0 = 7 for DL)", yi = c(egg$yi), vi = c(egg$vi)))
cases <- list(list("normand1999", "DL"), list("normand1999", "REML"), list("normand1999", "FE"),
              list("bcg", "DL"), list("bcg", "PM"), list("egger2001", "DL"), list("egger2001", "REML"))

tf <- list()
for (cs in cases) for (test in c("z", "knha", "t")) for (level in c(0.95, 0.90)) {
  d <- data[[cs[[1]]]]
  r <- suppressWarnings(rma(d$yi, d$vi, method = cs[[2]], test = test, level = 100 * level,
                            control = ctrl(cs[[2]])))
  t <- suppressWarnings(trimfill(r, control = ctrl(cs[[2]])))
  tf[[length(tf) + 1]] <- list(dataset = cs[[1]], method = cs[[2]], test = test, level = level,
                               k0 = t$k0, side = t$side, fit = fitlist(r), filled = fitlist(t),
                               same_object = t$k0 == 0 && identical(c(t$beta), c(r$beta)) && t$pval == r$pval)
}

msg <- function(expr) tryCatch({ force(expr); NA }, error = function(e) conditionMessage(e))
same <- rep(0.3, 5)
vi5 <- c(0.01, 0.02, 0.05, 0.1, 0.2)
warn <- NA
rt <- withCallingHandlers(regtest(same, vi5, model = "lm"), warning = function(w) {
  warn <<- conditionMessage(w); invokeRestart("muffleWarning") })
fit <- withCallingHandlers(summary(rt$fit), warning = function(w) {
  warn <<- conditionMessage(w); invokeRestart("muffleWarning") })
no_info <- list(
  identical_yi = same, identical_vi = vi5,
  regtest_t = rt$zval, regtest_p = rt$pval, regtest_warning = warn,
  equal_vi_error = msg(regtest(c(0.1, 0.3, 0.2, 0.5, 0.4), rep(0.1, 5), model = "lm")),
  trimfill_identical_error = msg(suppressWarnings(trimfill(rma(rep(0.3, 6), c(vi5, 0.3), method = "DL")))))

out <- list(
  generated_by = "tests/r/trimfill_tests_reference.R",
  r_version = R.version.string,
  metafor_version = as.character(packageVersion("metafor")),
  data = data, trimfill = tf, no_information = no_info)
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, null = "null", na = "null", pretty = TRUE),
           "tests/fixtures/trimfill_tests_reference.json")
