# Reference values for tests/test_prepost.py: pre-post correlations derived
# from what a paired study reports (SD of change, paired t, exact paired p)
# and the SMD that metafor 3.8.1 computes with them.
#   Rscript tests/r/prepost_reference.R   (from the repository root)
# writes tests/fixtures/prepost_reference.json (17 significant digits).
#
# The pre/post scores are SIMULATED here (set.seed below; normal draws with a
# chosen correlation): they are not data from any study. For sample statistics
# of one set of paired data the identity
#   var(post - pre) = var(pre) + var(post) - 2 cov(pre, post)
# holds exactly, so the r derived from sd(post - pre), from the paired t of
# t.test(paired = TRUE) or from its p must equal cor(pre, post): an
# independent reference for the derivation (Follmann et al. 1992; Cochrane
# Handbook 6.5.2.8). escalc("SMCR", ri = cor(pre, post)) gives yi/vi, and
# escalc("SMCC", ri = cor) recomputes sd_change from r (round trip).
suppressMessages({library(metafor); library(jsonlite)})
stopifnot(packageVersion("metafor") == "3.8.1")

set.seed(20161201)
design <- data.frame(n = c(8, 12, 20, 35, 60, 15, 25),
                     rho = c(0.2, 0.5, 0.8, 0.95, 0.6, -0.3, 0.0),
                     shift = c(0.9, -0.6, 0.4, 0.3, -0.25, 1.2, 0.7),
                     sd_ratio = c(1.0, 1.3, 0.8, 1.1, 1.0, 0.7, 1.5))
rows <- lapply(seq_len(nrow(design)), function(i) {
  d <- design[i, ]
  z1 <- rnorm(d$n); z2 <- rnorm(d$n)
  pre <- 10 + 2 * z1
  post <- 10 + 2 * d$shift + 2 * d$sd_ratio * (d$rho * z1 + sqrt(1 - d$rho^2) * z2)
  tt <- t.test(post, pre, paired = TRUE)
  r <- cor(pre, post)
  smcr <- escalc("SMCR", m1i = mean(post), m2i = mean(pre), sd1i = sd(pre), ni = d$n, ri = r)
  smcc <- escalc("SMCC", m1i = mean(post), m2i = mean(pre), sd1i = sd(post), sd2i = sd(pre), ni = d$n, ri = r)
  list(n = d$n, m_pre = mean(pre), sd_pre = sd(pre), m_post = mean(post), sd_post = sd(post),
       mean_change = mean(post - pre), sd_change = sd(post - pre),
       t = unname(tt$statistic), p = tt$p.value, r = r,
       smcr_yi = c(smcr$yi), smcr_vi = c(smcr$vi), smcc_yi = c(smcc$yi), smcc_vi = c(smcc$vi))
})
cols <- names(rows[[1]])
out <- list(generated_by = "tests/r/prepost_reference.R", r_version = R.version.string,
            metafor_version = as.character(packageVersion("metafor")),
            note = "simulated paired data (set.seed(20161201)); not data from any study",
            cases = setNames(lapply(cols, function(k) sapply(rows, `[[`, k)), cols))
writeLines(toJSON(out, digits = I(17), auto_unbox = TRUE, pretty = TRUE), "tests/fixtures/prepost_reference.json")
