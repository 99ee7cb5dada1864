# Reference values for tests/test_plots.py (meta.plots).
# Run from the repository root:  Rscript tests/r/plots_reference.R
# Writes tests/fixtures/plots_reference.json.
#
# Data: metafor's dat.normand1999 (Normand 1999, length of hospital stay,
# specialist vs routine care), SMD via escalc() defaults. The "region" grouping
# (UK vs elsewhere) is illustrative only, used to exercise subgroup plots.
# Expected text lines are formatted here, in R, with RevMan 5 wording
# (Deeks & Higgins 2010), so the Python formatting is checked independently.
suppressPackageStartupMessages({library(metafor); library(jsonlite)})

dat <- escalc(measure = "SMD", m1i = m1i, sd1i = sd1i, n1i = n1i,
              m2i = m2i, sd2i = sd2i, n2i = n2i, data = dat.normand1999)
dat$region <- ifelse(grepl("^(Edinburgh|Orpington|Newcastle)", dat$source), "UK", "Elsewhere")

# RevMan-style P value: "P < 0.00001", 2 decimals from 0.01, else 1 significant digit
rm_p <- function(p) {
  if (p < 0.00001) return("P < 0.00001")
  if (p >= 0.01) return(sprintf("P = %.2f", p))
  paste0("P = ", formatC(signif(p, 1), format = "fg", digits = 1))
}
het_line <- function(r) {
  if (r$k < 2) return("Heterogeneity: Not applicable")
  tau <- if (r$method == "FE") "" else sprintf("Tau\u00b2 = %.2f; ", r$tau2)
  sprintf("Heterogeneity: %sChi\u00b2 = %.2f, df = %d (%s); I\u00b2 = %.0f%%",
          tau, r$QE, r$k - 1L, rm_p(r$QEp), r$I2)
}
overall_line <- function(r) {
  if (r$test == "z") sprintf("Test for overall effect: Z = %.2f (%s)", abs(r$zval), rm_p(r$pval))
  else sprintf("Test for overall effect: t = %.2f, df = %d (%s)", abs(r$zval), r$k - 1L, rm_p(r$pval))
}
fit_json <- function(r) {
  pr <- predict(r)
  list(k = r$k, estimate = as.numeric(r$b), se = r$se, stat = r$zval, p = r$pval,
       ci_low = r$ci.lb, ci_high = r$ci.ub, tau2 = r$tau2, tau = sqrt(r$tau2),
       i2 = r$I2, h2 = r$H2, q = r$QE, q_df = r$k - 1L, q_p = r$QEp,
       pi_low = if (is.null(pr$pi.lb)) NA else pr$pi.lb,
       pi_high = if (is.null(pr$pi.ub)) NA else pr$pi.ub,
       weights = as.numeric(weights(r)), method = r$method,
       test = if (r$test == "z") "z" else "hksj",
       heterogeneity_line = het_line(r), overall_line = overall_line(r))
}

res <- rma(yi, vi, data = dat, method = "DL")
res_hk <- rma(yi, vi, data = dat, method = "DL", test = "knha")
res1 <- rma(yi, vi, data = dat[1, ], method = "DL")
res2 <- rma(yi, vi, data = dat[1:2, ], method = "DL")

groups <- unique(dat$region)
sub <- lapply(groups, function(g) rma(yi, vi, data = dat[dat$region == g, ], method = "DL"))
names(sub) <- groups
# RevMan test for subgroup differences: fixed-effect Q across subgroup estimates
between <- rma(sapply(sub, function(r) as.numeric(r$b)), sei = sapply(sub, function(r) r$se), method = "FE")
qb <- between$QE; qb_df <- between$k - 1L; qb_p <- between$QEp
i2b <- max(0, (qb - qb_df) / qb) * 100
sub_line <- sprintf("Test for subgroup differences: Chi\u00b2 = %.2f, df = %d (%s), I\u00b2 = %.1f%%",
                    qb, qb_df, rm_p(qb_p), i2b)

# Funnel plots: metafor's dat.hackshaw1998 (log odds ratios, 37 studies), where
# trim-and-fill adds studies (k0 = 7 on the left) and Egger's test is significant.
hk <- dat.hackshaw1998
res_f <- rma(yi, vi, data = hk, method = "DL")
eg <- regtest(res_f, model = "lm")
eg_coef <- coef(summary(eg$fit))
tf <- trimfill(res_f)
filled <- tf$fill == TRUE

out <- list(
  source = "metafor::dat.normand1999, escalc(measure='SMD')",
  metafor_version = as.character(packageVersion("metafor")),
  studies = list(label = as.character(dat$source), region = dat$region,
                 yi = as.numeric(dat$yi), vi = as.numeric(dat$vi),
                 n1 = dat$n1i, mean1 = dat$m1i, sd1 = dat$sd1i,
                 n2 = dat$n2i, mean2 = dat$m2i, sd2 = dat$sd2i),
  dl = fit_json(res), dl_hksj = fit_json(res_hk), dl_k1 = fit_json(res1), dl_k2 = fit_json(res2),
  subgroups = list(groups = lapply(sub, fit_json), q_between = qb, q_between_df = qb_df,
                   q_between_p = qb_p, differences_line = sub_line),
  # regtest(model="lm"): lm(yi ~ sei, weights = 1/vi); line in funnel space yi = b0 + b1 * sei
  funnel_studies = list(label = paste(hk$author, hk$year), yi = as.numeric(hk$yi), vi = as.numeric(hk$vi)),
  funnel_dl = fit_json(res_f),
  egger = list(limit_estimate = eg_coef[1, 1], asymmetry = eg_coef[2, 1],
               asymmetry_se = eg_coef[2, 2], t = eg$zval, df = eg$dfs, p = eg$pval),
  trimfill = list(k0 = tf$k0, side = tf$side, filled_yi = as.numeric(tf$yi[filled]),
                  filled_vi = as.numeric(tf$vi[filled]), result = fit_json(tf))
)
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, na = "null", pretty = TRUE),
           "tests/fixtures/plots_reference.json")
