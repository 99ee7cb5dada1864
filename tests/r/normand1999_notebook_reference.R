# Data and reference values for notebooks/own_data.ipynb (a researcher pooling their own CSV).
# Run from the repository root:
#   Rscript tests/r/normand1999_notebook_reference.R
# 1. writes notebooks/data/normand1999.csv: dat.normand1999 from R's metadat package
#    (Normand 1999, Stat Med 18(3):321-359, doi:10.1002/(SICI)1097-0258(19990215)18:3<321::AID-SIM28>3.0.CO;2-P;
#    length of hospital stay in days of stroke patients, specialist (group 1) vs routine care (group 2));
# 2. prints the metafor 3.8.1 numbers the notebook asserts as literals, and writes them to
#    tests/fixtures/normand1999_notebook_reference.json (17 significant digits).
# The Bayesian numbers (half-normal(0.5) prior on tau, uniform prior on mu) are integrals over tau
# computed here with integrate()/uniroot() from the restricted likelihood (Harville 1974), as
# tests/r/bayes_reference.R does (bayesmeta is not installed).
suppressMessages({library(metafor); library(metadat); library(jsonlite)})
stopifnot(packageVersion("metafor") == "3.8.1")

dat <- dat.normand1999
write.csv(dat, "notebooks/data/normand1999.csv", row.names = FALSE)

es <- escalc(measure = "SMD", m1i = m1i, sd1i = sd1i, n1i = n1i, m2i = m2i, sd2i = sd2i, n2i = n2i,
             data = dat, slab = source)
# iterative estimators converged tightly (metafor's defaults stop at 1e-5 / ~1.2e-4; meta solves to
# machine precision), so the notebook can assert to 1e-8
reml <- rma(yi, vi, data = es, method = "REML", test = "knha", slab = source, control = list(threshold = 1e-12))
ci <- confint(reml, control = list(tol = 1e-12))
dl <- rma(yi, vi, data = es, method = "DL")
pm <- rma(yi, vi, data = es, method = "PM", control = list(tol = 1e-12))
l1o <- leave1out(reml)
eg <- regtest(reml, model = "lm")

# Bayesian NNHM: tau ~ half-normal(0.5), mu ~ uniform; mu | tau, y ~ N(M, W) (GLS)
y <- es$yi; v <- es$vi; k <- length(y)
cond <- function(t) {
  w <- 1 / (v + t^2); W <- 1 / sum(w); M <- W * sum(w * y)
  lik <- prod(sqrt(w)) * sqrt(W) * exp(-sum(w * (y - M)^2) / 2)
  c(M = M, W = W, lik = lik)
}
post <- function(t) sapply(t, function(x) 2 * dnorm(x, 0, 0.5) * cond(x)["lik"])
intg <- function(f) integrate(f, 0, Inf, rel.tol = 1e-12, abs.tol = 0, subdivisions = 5000L)$value
Z <- intg(post)
mu_cdf <- function(q) intg(function(t) post(t) * sapply(t, function(x) {
  cc <- cond(x); pnorm(q, cc["M"], sqrt(cc["W"]))
})) / Z
mu_median <- uniroot(function(q) mu_cdf(q) - 0.5, c(-3, 3), tol = 1e-14)$root

ref <- list(
  metafor = as.character(packageVersion("metafor")),
  metadat = as.character(packageVersion("metadat")),
  yi = as.numeric(es$yi), vi = as.numeric(es$vi),
  reml_knha = list(tau2 = reml$tau2, estimate = as.numeric(reml$beta), se = reml$se,
                   ci_low = reml$ci.lb, ci_high = reml$ci.ub, i2 = reml$I2, q = reml$QE),
  confint = list(tau2_low = ci$random["tau^2", "ci.lb"], tau2_high = ci$random["tau^2", "ci.ub"]),
  dl = list(tau2 = dl$tau2, estimate = as.numeric(dl$beta)),
  pm = list(tau2 = pm$tau2, estimate = as.numeric(pm$beta)),
  leave1out_estimate = as.numeric(l1o$estimate),
  regtest = list(t = eg$zval, p = eg$pval),
  bayes_halfnormal_0.5 = list(mu_median = mu_median)
)
write_json(ref, "tests/fixtures/normand1999_notebook_reference.json", digits = NA, auto_unbox = TRUE, pretty = TRUE)
print(es); print(reml); print(ci); print(l1o); print(eg)
cat(toJSON(ref, digits = 17, auto_unbox = TRUE, pretty = TRUE), "\n")
