# Reference values for tests/test_effects.py (meta.effects), from R metafor.
#
# Run from the repository root:
#   Rscript tests/r/effects_reference.R
# Writes tests/fixtures/effects_reference.json. jsonlite 1.8.4 writes at most
# 15 significant digits even with digits = NA (its 'max precision'), i.e. a
# relative rounding error <= 5e-15, far below the tests' 1e-8 tolerance.
#
# Sources of the reference numbers:
# * SMD from means/SDs, vtype "LS" and "UB": metafor::escalc("SMD") on
#   metadat::dat.normand1999, metadat::dat.gibson2002 (rows with means) and
#   hand-made edge cases (n1 = n2 = 2, very unequal n, g = 0, large g).
# * t route and d route: escalc 3.8.1 accepts ti= and di= for measure "SMD"
#   (it sets di <- ti * sqrt(1/n1i + 1/n2i), then yi <- J * di), so these
#   references come from escalc itself.
# * p route: escalc 3.8.1 has no pi= argument, so the t is computed here from
#   first principles, t = direction * qt(1 - p/2, n1 + n2 - 2), and passed to
#   escalc(ti = t).
# * MD routes (Cochrane Handbook 6.5.2.3): pooled SD computed here from first
#   principles (SE from a CI via qt(1 - (1-level)/2, n1 + n2 - 2); SD = SE /
#   sqrt(1/n1 + 1/n2); SE from p as |md| / qt(1 - p/2, n1 + n2 - 2)), then
#   escalc("SMD", m1i = md, m2i = 0, sd1i = sd2i = SD).
# * "revman" variance (Deeks & Higgins 2010, RevMan 5 statistical algorithms):
#   not in metafor; computed here from its formula, J = 1 - 3/(4N - 9),
#   vi = N/(n1 n2) + g^2 / (2 (N - 3.94)).
# * Paired: escalc("SMCR") (ri, standardised by the pre SD) and
#   escalc("SMCC") (sd of change = sqrt(sd1^2 + sd2^2 - 2 r sd1 sd2), computed
#   by metafor from ri). metadat 1.2.0 has no data set with pre/post means
#   and a pre-post correlation (dat.morris2008 is not in this version), so the
#   pre-post rows below are SYNTHETIC numbers chosen to span small/large n and
#   r of -0.5 to 0.95; they are not data from any study.

suppressPackageStartupMessages({
  library(metafor)
  library(jsonlite)
})
stopifnot(packageVersion("metafor") == "3.8.1")

revman <- function(d, n1, n2) {
  N <- n1 + n2
  g <- (1 - 3 / (4 * N - 9)) * d
  list(yi = g, vi = N / (n1 * n2) + g^2 / (2 * (N - 3.94)))
}
pooled_sd <- function(sd1, n1, sd2, n2) {
  sqrt(((n1 - 1) * sd1^2 + (n2 - 1) * sd2^2) / (n1 + n2 - 2))
}
esc <- function(...) {
  x <- escalc(...)
  list(yi = as.numeric(x$yi), vi = as.numeric(x$vi))
}

# ---- SMD from means and SDs ------------------------------------------------
gib <- subset(dat.gibson2002, !is.na(m1i))
edge <- data.frame(
  label = c("n1=n2=2", "very unequal n (3 vs 500)", "very unequal n (400 vs 2)",
            "g = 0", "large g", "large negative g, small n"),
  m1i  = c(10.0, 5.0, 1.0, 3.3, 100, -20),
  sd1i = c(2.0, 1.0, 0.5, 1.1, 1.0, 3.0),
  n1i  = c(2, 3, 400, 15, 30, 4),
  m2i  = c(7.5, 4.0, 1.2, 3.3, 80, 5),
  sd2i = c(3.0, 2.0, 0.7, 0.9, 2.0, 2.5),
  n2i  = c(2, 500, 2, 21, 25, 3)
)
means <- data.frame(
  label = c(paste("dat.normand1999 study", dat.normand1999$study),
            paste("dat.gibson2002", gib$author, gib$year), edge$label),
  m1i  = c(dat.normand1999$m1i, gib$m1i, edge$m1i),
  sd1i = c(dat.normand1999$sd1i, gib$sd1i, edge$sd1i),
  n1i  = c(dat.normand1999$n1i, gib$n1i, edge$n1i),
  m2i  = c(dat.normand1999$m2i, gib$m2i, edge$m2i),
  sd2i = c(dat.normand1999$sd2i, gib$sd2i, edge$sd2i),
  n2i  = c(dat.normand1999$n2i, gib$n2i, edge$n2i),
  stringsAsFactors = FALSE
)
ls <- with(means, esc("SMD", m1i = m1i, sd1i = sd1i, n1i = n1i,
                      m2i = m2i, sd2i = sd2i, n2i = n2i, vtype = "LS"))
ub <- with(means, esc("SMD", m1i = m1i, sd1i = sd1i, n1i = n1i,
                      m2i = m2i, sd2i = sd2i, n2i = n2i, vtype = "UB"))
rm <- with(means, revman((m1i - m2i) / pooled_sd(sd1i, n1i, sd2i, n2i), n1i, n2i))
smd_means <- c(as.list(means), list(ls = ls, ub = ub, revman = rm))

# ---- t route (escalc ti=) ----------------------------------------------------
tt <- data.frame(ti  = c(2.5, -1.3, 0, 8.0, 0.4, -3.7, 1.96),
                 n1i = c(10, 2, 25, 40, 3, 200, 12),
                 n2i = c(12, 2, 25, 38, 300, 190, 3))
smd_t <- c(as.list(tt), with(tt, list(
  ls = esc("SMD", ti = ti, n1i = n1i, n2i = n2i, vtype = "LS"),
  ub = esc("SMD", ti = ti, n1i = n1i, n2i = n2i, vtype = "UB"),
  revman = revman(ti * sqrt(1 / n1i + 1 / n2i), n1i, n2i))))

# ---- d route (escalc di=) ----------------------------------------------------
dd <- data.frame(di  = c(0.5, -0.8, 0, 2.5, 1.2, -0.05),
                 n1i = c(10, 2, 25, 40, 3, 200),
                 n2i = c(12, 2, 25, 38, 300, 190))
smd_d <- c(as.list(dd), with(dd, list(
  ls = esc("SMD", di = di, n1i = n1i, n2i = n2i, vtype = "LS"),
  ub = esc("SMD", di = di, n1i = n1i, n2i = n2i, vtype = "UB"),
  revman = revman(di, n1i, n2i))))

# ---- p route (first-principles t, then escalc ti=) ---------------------------
pp <- data.frame(p = c(0.03, 0.5, 1, 1e-6, 0.049, 0.2),
                 direction = c(1, -1, 1, -1, 1, 1),
                 n1i = c(10, 2, 25, 40, 3, 200),
                 n2i = c(12, 2, 25, 38, 300, 190))
pp$ti <- pp$direction * qt(1 - pp$p / 2, pp$n1i + pp$n2i - 2)
smd_p <- c(as.list(pp), with(pp, list(
  ls = esc("SMD", ti = ti, n1i = n1i, n2i = n2i, vtype = "LS"),
  ub = esc("SMD", ti = ti, n1i = n1i, n2i = n2i, vtype = "UB"),
  revman = revman(ti * sqrt(1 / n1i + 1 / n2i), n1i, n2i))))

# ---- MD routes (Cochrane Handbook 6.5.2.3, first principles) -----------------
md <- data.frame(md  = c(4.2, -1.5, 0.3, 12.0, -0.8),
                 n1i = c(15, 2, 60, 8, 120),
                 n2i = c(14, 3, 55, 30, 4),
                 se  = c(1.9, 0.6, 0.25, 3.1, 0.5),
                 ci_low  = c(0.1, -3.9, -0.2, 5.0, -1.7),
                 ci_high = c(8.3, 0.9, 0.8, 19.0, 0.1),
                 level = c(0.95, 0.95, 0.95, 0.90, 0.99),
                 p = c(0.04, 0.3, 0.6, 0.001, 0.12))
md_route <- function(sd) with(md, list(
  ls = esc("SMD", m1i = md, m2i = 0 * md, sd1i = sd, sd2i = sd, n1i = n1i,
           n2i = n2i, vtype = "LS"),
  ub = esc("SMD", m1i = md, m2i = 0 * md, sd1i = sd, sd2i = sd, n1i = n1i,
           n2i = n2i, vtype = "UB"),
  revman = revman(md / sd, n1i, n2i)))
root <- with(md, sqrt(1 / n1i + 1 / n2i))
df <- with(md, n1i + n2i - 2)
sd_se <- md$se / root
sd_ci <- with(md, (ci_high - ci_low) / (2 * qt(1 - (1 - level) / 2, df))) / root
sd_p <- with(md, abs(md) / qt(1 - p / 2, df)) / root
smd_md <- c(as.list(md), list(from_se = md_route(sd_se), from_ci = md_route(sd_ci),
                              from_p = md_route(sd_p)))

# ---- paired: SMCR and SMCC (synthetic pre-post rows; see header) -------------
pr <- data.frame(m_pre   = c(30.6, 23.5, 0.5, 53.4, 35.6, 10.0, 5.0),
                 sd_pre  = c(15.0, 3.1, 0.1, 14.5, 4.7, 2.0, 1.5),
                 m_post  = c(38.5, 26.8, 0.7, 75.9, 36.0, 10.0, 2.0),
                 sd_post = c(11.6, 4.1, 0.1, 4.4, 4.6, 2.5, 1.0),
                 ni      = c(20, 50, 9, 10, 14, 3, 200),
                 ri      = c(0.47, 0.64, 0.77, 0.89, 0.44, -0.5, 0.95))
pr$sd_change <- with(pr, sqrt(sd_post^2 + sd_pre^2 - 2 * ri * sd_post * sd_pre))
paired <- c(as.list(pr), with(pr, list(
  smcr = esc("SMCR", m1i = m_post, m2i = m_pre, sd1i = sd_pre, ni = ni, ri = ri),
  smcc = esc("SMCC", m1i = m_post, m2i = m_pre, sd1i = sd_post, sd2i = sd_pre,
             ni = ni, ri = ri))))

out <- list(
  generated_by = "tests/r/effects_reference.R",
  r_version = R.version.string,
  metafor_version = as.character(packageVersion("metafor")),
  metadat_version = as.character(packageVersion("metadat")),
  smd_means = smd_means, smd_t = smd_t, smd_d = smd_d, smd_p = smd_p,
  smd_md = smd_md, paired = paired
)
write_json(out, "tests/fixtures/effects_reference.json", digits = NA,
           auto_unbox = TRUE, pretty = TRUE)
cat("wrote tests/fixtures/effects_reference.json\n")
