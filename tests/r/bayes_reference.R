# Reference values for tests/test_bayes.py (meta.bayes.bayes_pool).
# Run from the repository root:
#   Rscript tests/r/bayes_reference.R
# writes tests/fixtures/bayes_reference.json (17 significant digits).
#
# Independent computation of the Bayesian normal-normal hierarchical model
#   yi | theta_i ~ N(theta_i, vi),  theta_i | mu, tau ~ N(mu, tau^2),
#   tau ~ half-normal(scale) or half-Cauchy(scale),
#   mu ~ improper uniform, or N(m0, s0^2),
# written from the model's definition in matrix form (not from the Python code;
# bayesmeta is not installed: it is not in Debian):
#   marginally y | mu, tau ~ MVN(mu 1, S), S = diag(vi) + tau^2 I.
# * normal mu prior:  p(y | tau) = MVN density of y with mean m0 1 and covariance
#   S + s0^2 1 1'  (mu integrated out analytically);
#   mu | tau, y ~ N(M, W) with W = 1 / (1' S^-1 1 + 1/s0^2), M = W (1' S^-1 y + m0/s0^2).
# * uniform mu prior: p(y | tau) = int MVN(y; mu 1, S) dmu
#   = (2 pi)^(-(k-1)/2) |S|^(-1/2) (1' S^-1 1)^(-1/2) exp(-r' S^-1 r / 2),  r = y - M 1
#   (the restricted likelihood, Harville 1974); mu | tau, y ~ N(M, W) with
#   W = 1 / (1' S^-1 1), M = W 1' S^-1 y (generalised least squares).
# Both marginal likelihoods are checked below against a numerical integral over mu.
# Posterior summaries are then one-dimensional integrals over tau with R's
# integrate() (rel.tol 1e-12) and quantiles roots found by uniroot() (tol 1e-14):
#   p(tau | y) = p(tau) p(y | tau) / Z,
#   P(mu <= x | y) = int p(tau | y) pnorm(x, M(tau), sqrt(W(tau))) dtau,
#   P(theta_new <= x | y) = int p(tau | y) pnorm(x, M(tau), sqrt(W(tau) + tau^2)) dtau.
# Moments that do not exist (half-Cauchy prior: posterior tail of tau ~ tau^-(2+b),
# b = k - 1 under the uniform mu prior, b = k under the normal one; E[tau] needs
# b >= 1, E[tau^2] b >= 2; under the uniform mu prior W(tau) ~ tau^2/k, so mean(mu)
# needs E[tau], sd(mu) E[tau^2]) are written as Inf (NaN for an undefined mean):
# that is mathematics, not a computation.
suppressMessages({library(metafor); library(metadat); library(jsonlite)})

REL <- 1e-12
intg <- function(f, lo, hi) integrate(f, lo, hi, rel.tol = REL, abs.tol = 0, subdivisions = 5000L)$value

prior_density <- function(t, prior, s)
  if (prior == "halfnormal") 2 * dnorm(t, 0, s) else 2 * dcauchy(t, 0, s)

model <- function(y, v, prior, s, mu_prior) {
  k <- length(y); one <- rep(1, k)
  uniform <- is.null(mu_prior)
  cond <- function(t) {  # M(tau), W(tau), p(y | tau)
    S <- diag(v, k) + t^2 * diag(k)
    Si <- solve(S)
    a <- c(t(one) %*% Si %*% one)
    b <- c(t(one) %*% Si %*% y)
    if (uniform) {
      W <- 1 / a; M <- W * b
      r <- y - M
      lik <- (2 * pi)^(-(k - 1) / 2) * det(S)^(-1 / 2) * a^(-1 / 2) * exp(-c(t(r) %*% Si %*% r) / 2)
    } else {
      m0 <- mu_prior[1]; s0 <- mu_prior[2]
      W <- 1 / (a + 1 / s0^2); M <- W * (b + m0 / s0^2)
      C <- S + s0^2 * one %*% t(one)
      L <- chol(C)
      z <- backsolve(L, y - m0, transpose = TRUE)
      lik <- (2 * pi)^(-k / 2) / prod(diag(L)) * exp(-sum(z^2) / 2)
    }
    c(M = M, W = W, lik = lik)
  }
  # check the marginal likelihood against a numerical integral over mu at two tau values
  for (t in c(0.05, 0.7)) {
    cf <- cond(t)
    pm <- if (uniform) function(m) 1 else function(m) dnorm(m, mu_prior[1], mu_prior[2])
    num <- intg(function(mu) sapply(mu, function(m) prod(dnorm(y, m, sqrt(v + t^2))) * pm(m)),
                cf[["M"]] - 60 * sqrt(cf[["W"]]), cf[["M"]] + 60 * sqrt(cf[["W"]]))
    stopifnot(abs(num / cf[["lik"]] - 1) < 1e-9)
  }
  un <- function(tt) sapply(tt, function(t) prior_density(t, prior, s) * cond(t)[["lik"]])
  brk <- c(0, s * c(0.25, 0.5, 1, 2, 4, 8, 16), Inf)
  tot <- function(f) sum(sapply(seq_len(length(brk) - 1), function(i) intg(f, brk[i], brk[i + 1])))
  Z <- tot(un)
  post <- function(tt) un(tt) / Z
  cw <- function(tt, what) sapply(tt, function(t) cond(t)[[what]])
  list(k = k, cond = cond, post = post, tot = tot, Z = Z, cw = cw, uniform = uniform, prior = prior, s = s)
}

# equal-tailed quantile of a mixture CDF over tau
mix_cdf <- function(m, x, pred = FALSE, upper = FALSE)
  m$tot(function(tt) {
    M <- m$cw(tt, "M"); W <- m$cw(tt, "W")
    m$post(tt) * pnorm(x, M, sqrt(W + if (pred) tt^2 else 0), lower.tail = !upper)
  })
mix_quantile <- function(m, p, pred = FALSE, centre, width) {
  uniroot(function(x) mix_cdf(m, x, pred) - p, c(centre - width, centre + width),
          extendInt = "upX", tol = 1e-14, maxiter = 1000)$root
}
tau_cdf <- function(m, q) if (q <= 0) 0 else intg(m$post, 0, q)
tau_quantile <- function(m, p) uniroot(function(q) tau_cdf(m, q) - p, c(1e-8 * m$s, m$s),
                                       extendInt = "upX", tol = 1e-14, maxiter = 1000)$root

summarise <- function(name, y, v, prior, s, mu_prior = NULL, level = 0.95, note = "",
                      mu_points = NULL, tau_points = NULL) {
  m <- model(y, v, prior, s, mu_prior)
  k <- m$k
  b <- if (m$uniform) k - 1 else k
  heavy <- prior == "halfcauchy"
  tau_mean_ok <- !heavy || b >= 1
  tau_sd_ok <- !heavy || b >= 2
  mu_mean_ok <- !m$uniform || tau_mean_ok
  mu_sd_ok <- !m$uniform || tau_sd_ok
  e_tau <- if (tau_mean_ok) m$tot(function(tt) tt * m$post(tt)) else Inf
  e_tau2 <- if (tau_sd_ok) m$tot(function(tt) tt^2 * m$post(tt)) else Inf
  mu_mean <- if (mu_mean_ok) m$tot(function(tt) m$cw(tt, "M") * m$post(tt)) else NaN
  mu_sd <- if (mu_sd_ok) sqrt(m$tot(function(tt) (m$cw(tt, "W") + m$cw(tt, "M")^2) * m$post(tt)) - mu_mean^2) else Inf
  centre <- m$cond(0.5 * s)[["M"]]
  width <- 4 * sqrt(max(v) + s^2)
  lo <- (1 - level) / 2; hi <- (1 + level) / 2
  if (is.null(mu_points)) mu_points <- centre + c(-1, -0.3, 0, 0.4, 1.2) * sqrt(mean(v) + s^2)
  if (is.null(tau_points)) tau_points <- s * c(0, 0.1, 0.5, 1, 2.5)
  mu_dens <- sapply(mu_points, function(x) m$tot(function(tt)
    m$post(tt) * dnorm(x, m$cw(tt, "M"), sqrt(m$cw(tt, "W")))))
  list(name = name, note = note, yi = y, vi = v, tau_prior = prior, tau_scale = s,
       mu_prior = if (is.null(mu_prior)) NULL else unname(mu_prior), level = level, k = k,
       mu_median = mix_quantile(m, 0.5, FALSE, centre, width),
       mu_mean = mu_mean, mu_sd = mu_sd,
       mu_ci_low = mix_quantile(m, lo, FALSE, centre, width),
       mu_ci_high = mix_quantile(m, hi, FALSE, centre, width),
       tau_median = tau_quantile(m, 0.5),
       tau_mean = e_tau,
       tau_sd = if (tau_sd_ok) sqrt(e_tau2 - e_tau^2) else Inf,
       tau_ci_low = tau_quantile(m, lo), tau_ci_high = tau_quantile(m, hi),
       p_positive = mix_cdf(m, 0, upper = TRUE),
       p_greater_0.2 = mix_cdf(m, 0.2, upper = TRUE),
       pred_low = mix_quantile(m, lo, TRUE, centre, 2 * width),
       pred_high = mix_quantile(m, hi, TRUE, centre, 2 * width),
       mu_points = mu_points, mu_density = mu_dens,
       tau_points = tau_points, tau_density = m$post(tau_points))
}

# data ---------------------------------------------------------------------
nd <- escalc("SMD", m1i = m1i, sd1i = sd1i, n1i = n1i, m2i = m2i, sd2i = sd2i, n2i = n2i,
             data = dat.normand1999)  # metadat: Normand (1999), 9 stroke-unit trials, length of stay
bcg <- escalc("RR", ai = tpos, bi = tneg, ci = cpos, di = cneg, data = dat.bcg)  # metadat: BCG vaccine, 13 trials
ny <- c(nd$yi); nv <- c(nd$vi)
by <- c(bcg$yi); bv <- c(bcg$vi)
# Rubin (1981) eight schools, as printed in the bayesmeta vignette (cran/bayesmeta,
# inst/doc/bayesmeta.html, "print(Rubin1981)"): effect and standard error.
rubin_y <- c(28.39, 7.94, -2.75, 6.82, -0.64, 0.63, 18.01, 12.16)
rubin_se <- c(14.9, 10.2, 16.3, 11.0, 9.4, 11.4, 10.4, 17.6)

cases <- list(
  summarise("k1_hn0.5_uniform_95", ny[1], nv[1], "halfnormal", 0.5, note = "k = 1: tau posterior = prior"),
  summarise("k1_hc0.5_uniform_95", ny[1], nv[1], "halfcauchy", 0.5, note = "k = 1 half-Cauchy: infinite moments"),
  summarise("k1_hc1_normal01_90", ny[1], nv[1], "halfcauchy", 1, c(0, 1), level = 0.90),
  summarise("k2_hn0.5_uniform_95", ny[1:2], nv[1:2], "halfnormal", 0.5),
  summarise("k2_hc1_uniform_90", ny[1:2], nv[1:2], "halfcauchy", 1, level = 0.90),
  summarise("k2_hn1_normal02_95", ny[1:2], nv[1:2], "halfnormal", 1, c(0, 2)),
  summarise("k3_hn0.5_uniform_95", ny[1:3], nv[1:3], "halfnormal", 0.5),
  summarise("k3_hc0.5_normal01_95", ny[1:3], nv[1:3], "halfcauchy", 0.5, c(0, 1)),
  summarise("k4_hn1_uniform_90", ny[1:4], nv[1:4], "halfnormal", 1, level = 0.90),
  summarise("k4_hc1_uniform_95", ny[1:4], nv[1:4], "halfcauchy", 1),
  summarise("k5_hn0.5_normal02_90", ny[1:5], nv[1:5], "halfnormal", 0.5, c(0, 2), level = 0.90),
  summarise("k9_normand_hn1_uniform_95", ny, nv, "halfnormal", 1),
  summarise("k13_bcg_hn0.5_uniform_95", by, bv, "halfnormal", 0.5),
  summarise("k13_bcg_hc1_normal01_90", by, bv, "halfcauchy", 1, c(0, 1), level = 0.90),
  summarise("rubin1981_hc25_normal050_95", rubin_y, rubin_se^2, "halfcauchy", 25, c(0, 50),
            note = "bayesmeta vignette example (schools.example.1)")
)

out <- list(
  generated_by = "tests/r/bayes_reference.R",
  r_version = R.version.string, metafor = as.character(packageVersion("metafor")),
  metadat = as.character(packageVersion("metadat")),
  integrate_rel_tol = REL, uniroot_tol = 1e-14,
  cases = cases
)
writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE, na = "string", null = "null"),
           "tests/fixtures/bayes_reference.json")
cat("wrote tests/fixtures/bayes_reference.json with", length(cases), "cases\n")
