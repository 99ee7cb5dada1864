# Reference values for the end-to-end test of `meta reproduce` (tests/test_reproduce.py).
#
#   Rscript tests/r/reproduce_reference.R      (run from the repository root)
#
# writes tests/fixtures/reproduce_reference.json. A small synthetic data set
# (group means and SDs, so every SMD is exact) is defined here; the Python test
# writes it out as studies.csv / outcomes.csv / review_claims.csv / analyses.csv,
# runs `reproduce`, and compares pooled.csv and sensitivity.csv with the metafor
# fits below. Rows that the pipeline must leave out are included on purpose:
#   - dup2013 shares cohort "abc" with abc2011 and has only a p-value
#     (unit-of-analysis rule keeps abc2011: means_sd beats p_only);
#   - unl2012 has review_match = "unlikely" (default filter drops it);
#   - pro2014 is prospective (design filter of the case-control analysis drops it).
# The pooled rows are therefore abc2011, def2009, ghi2014, jkl2010.
#
# SMD conventions:
#   "ls"     = metafor escalc(measure = "SMD") default (exact J, vtype = "LS");
#   "revman" = Deeks & Higgins (2010), RevMan 5: g = d * (1 - 3 / (4 N - 9)),
#              v = N / (n1 n2) + g^2 / (2 (N - 3.94)), computed here by formula.

suppressMessages(library(metafor))
suppressMessages(library(jsonlite))

stopifnot(packageVersion("metafor") == "3.8.1")

studies <- data.frame(
  study_id = c("abc2011", "def2009", "ghi2014", "jkl2010", "dup2013", "unl2012", "pro2014"),
  cohort_id = c("abc", "def2009", "ghi2014", "jkl2010", "abc", "unl2012", "pro2014"),
  design = c(rep("case-control", 6), "prospective"),
  review_match = c("likely", "likely", "possible", "likely", "likely", "unlikely", "likely"),
  stringsAsFactors = FALSE)

outcomes <- data.frame(
  study_id = c("abc2011", "def2009", "ghi2014", "jkl2010", "dup2013", "unl2012", "pro2014"),
  n1    = c(15, 20, 12, 25, 15, 18, 10),
  mean1 = c(12.1, 11.9, 15.5, 10.0, NA, 11.0, 12.0),
  sd1   = c(3.2, 4.1, 2.9, 3.8, NA, 3.0, 3.0),
  n2    = c(15, 22, 14, 25, 15, 18, 40),
  mean2 = c(9.9, 9.6, 10.1, 9.5, NA, 9.0, 10.0),
  sd2   = c(3.5, 3.7, 3.3, 4.0, NA, 3.0, 3.0),
  p_value = c(NA, NA, NA, NA, 0.03, NA, NA),
  direction = c(NA, NA, NA, NA, 1, NA, NA),
  stringsAsFactors = FALSE)

used <- c("abc2011", "def2009", "ghi2014", "jkl2010")
d <- outcomes[match(used, outcomes$study_id), ]

ls <- escalc("SMD", m1i = mean1, sd1i = sd1, n1i = n1, m2i = mean2, sd2i = sd2, n2i = n2, data = d)
N <- d$n1 + d$n2
sp <- sqrt(((d$n1 - 1) * d$sd1^2 + (d$n2 - 1) * d$sd2^2) / (N - 2))
g <- (d$mean1 - d$mean2) / sp * (1 - 3 / (4 * N - 9))
rev <- data.frame(yi = g, vi = N / (d$n1 * d$n2) + g^2 / (2 * (N - 3.94)))

fit <- function(yi, vi, method, test) {
  # tight convergence so REML/PM are exact to ~1e-12 (metafor's default threshold is 1e-5)
  r <- rma(yi, vi, method = method, test = test,
           control = list(threshold = 1e-12, maxiter = 1000, tol = 1e-12))
  pr <- predict(r)
  list(k = r$k, estimate = as.numeric(r$b), se = r$se, ci_low = r$ci.lb, ci_high = r$ci.ub,
       p = r$pval, tau2 = r$tau2, i2 = r$I2, q = r$QE, q_p = r$QEp,
       pi_low = pr$pi.lb, pi_high = pr$pi.ub)
}

variants <- list(
  "revman DL" = fit(rev$yi, rev$vi, "DL", "z"),
  "ls DL" = fit(ls$yi, ls$vi, "DL", "z"),
  "revman REML" = fit(rev$yi, rev$vi, "REML", "z"),
  "revman PM" = fit(rev$yi, rev$vi, "PM", "z"),
  "revman DL HKSJ" = fit(rev$yi, rev$vi, "DL", "knha"),
  "revman REML HKSJ" = fit(rev$yi, rev$vi, "REML", "knha"))

primary <- rma(rev$yi, rev$vi, method = "DL")
eg <- regtest(primary, model = "lm")
tf <- trimfill(primary)

out <- list(
  metafor_version = as.character(packageVersion("metafor")),
  studies = studies,
  outcomes = outcomes,
  used = used,
  yi_revman = rev$yi, vi_revman = rev$vi,
  yi_ls = as.numeric(ls$yi), vi_ls = as.numeric(ls$vi),
  variants = variants,
  egger_p = eg$pval,
  trimfill_k0 = tf$k0)

writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE, na = "null"),
           "tests/fixtures/reproduce_reference.json")
