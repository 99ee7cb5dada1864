# Data and reference values for notebooks/multilevel.ipynb (a three-level meta-analysis end to end).
# Run from the repository root:
#   Rscript tests/r/multilevel_notebook_reference.R
# 1. writes notebooks/data/konstantopoulos2011.csv and notebooks/data/assink2016.csv: the data sets
#    dat.konstantopoulos2011 and dat.assink2016 of R's metadat package 1.2.0, unchanged
#    (write.csv(..., row.names = FALSE));
#    Konstantopoulos S (2011). Fixed effects and variance components estimation in three-level
#    meta-analysis. Research Synthesis Methods 2(1):61-76, doi:10.1002/jrsm.35 (56 studies of
#    modified school calendars in 11 districts; yi standardized mean differences);
#    Assink M, Wibbelink CJM (2016). Fitting three-level meta-analytic models in R: a step-by-step
#    tutorial. The Quantitative Methods for Psychology 12(3):154-174, doi:10.20982/tqmp.12.3.p154
#    (100 effect sizes of 17 studies on parental psychopathology and offspring delinquency);
# 2. writes the metafor 3.8.1 / clubSandwich 0.5.8 numbers the notebook asserts as literals to
#    tests/fixtures/multilevel_notebook_reference.json.
# rma.mv runs with a tight optimiser (nlminb rel.tol = 1e-10) and confint() with uniroot tol 1e-10,
# so the reference is the converged maximum, not nlminb's default stopping point (as
# tests/r/multilevel_reference.R). I2 per level: metafor FAQ "I^2 for multilevel and multivariate
# models" (Cheung 2014).
suppressMessages({library(metafor); library(metadat); library(clubSandwich); library(jsonlite)})
stopifnot(packageVersion("metafor") == "3.8.1", packageVersion("clubSandwich") == "0.5.8",
          packageVersion("metadat") == "1.2.0")
CTRL <- list(rel.tol = 1e-10, iter.max = 10000, eval.max = 10000)

k11 <- dat.konstantopoulos2011
a16 <- dat.assink2016
write.csv(k11, "notebooks/data/konstantopoulos2011.csv", row.names = FALSE)
write.csv(a16, "notebooks/data/assink2016.csv", row.names = FALSE)

i2_levels <- function(res) {
  W <- solve(res$V)
  X <- model.matrix(res)
  P <- W - W %*% X %*% solve(t(X) %*% W %*% X) %*% t(X) %*% W
  typ <- (res$k - res$p) / sum(diag(P))
  list(i2 = 100 * res$sigma2 / (sum(res$sigma2) + typ), i2_total = 100 * sum(res$sigma2) / (sum(res$sigma2) + typ))
}
fit <- function(res) list(beta = unname(c(res$beta)), se = unname(res$se), zval = unname(res$zval),
                          pval = unname(res$pval), ci_lb = unname(res$ci.lb), ci_ub = unname(res$ci.ub),
                          sigma2 = res$sigma2, QE = res$QE, QM = res$QM, QMp = res$QMp, logLik = c(logLik(res)))

# three-level model: schools (level 2) within districts (level 3)
res <- rma.mv(yi, vi, random = ~ 1 | district/school, data = k11, control = CTRL)
print(res)
three <- fit(res)
cis <- lapply(1:2, function(j) confint(res, sigma2 = j, control = list(tol = 1e-10))$random)
print(cis)
three$sigma2_ci_lb <- sapply(cis, function(ci) ci[1, "ci.lb"])
three$sigma2_ci_ub <- sapply(cis, function(ci) ci[1, "ci.ub"])
three <- c(three, i2_levels(res))

# moderator: year of the study
resy <- rma.mv(yi, vi, mods = ~ year, random = ~ 1 | district/school, data = k11, control = CTRL)
print(resy)
year <- fit(resy)

# CHE working model on dat.assink2016: V from vcalc (r = 0.6 within study), ~ 1 | study/esid, REML;
# CR2 cluster-robust t tests with Satterthwaite df (clubSandwich coef_test)
V <- vcalc(vi, cluster = study, obs = esid, rho = 0.6, data = a16)
che0 <- rma.mv(yi, V, random = ~ 1 | study/esid, data = a16, control = CTRL)
che1 <- rma.mv(yi, V, mods = ~ factor(deltype), random = ~ 1 | study/esid, data = a16, control = CTRL)
ct <- function(r) { t <- coef_test(r, vcov = "CR2"); print(t)
  list(beta = unname(t$beta), se = unname(t$SE), tstat = unname(t$tstat), df = unname(t$df_Satt), pval = unname(t$p_Satt)) }
che_int <- c(fit(che0), list(cr2 = ct(che0)))
che_deltype <- c(fit(che1), list(cr2 = ct(che1)))
print(che1)

ref <- list(metafor = as.character(packageVersion("metafor")),
            clubSandwich = as.character(packageVersion("clubSandwich")),
            metadat = as.character(packageVersion("metadat")),
            three_level = three, year = year, che = che_int, che_deltype = che_deltype)
writeLines(toJSON(ref, digits = NA, auto_unbox = TRUE, null = "null", na = "null"),
           "tests/fixtures/multilevel_notebook_reference.json")
