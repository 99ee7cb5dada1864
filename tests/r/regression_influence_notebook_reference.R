# Data and reference values for notebooks/regression_influence.ipynb (a binary outcome: risk ratios,
# Mantel-Haenszel, meta-regression, influence diagnostics).
# Run from the repository root:
#   Rscript tests/r/regression_influence_notebook_reference.R
# 1. writes notebooks/data/bcg.csv: dat.bcg of R's metadat package 1.2.0, unchanged
#    (write.csv(dat.bcg, row.names = FALSE)); 13 trials of the BCG vaccine against tuberculosis.
#    Source: Colditz GA, Brewer TF, Berkey CS, Wilson ME, Burdick E, Fineberg HV, Mosteller F (1994).
#    Efficacy of BCG vaccine in the prevention of tuberculosis: meta-analysis of the published
#    literature. JAMA 271(9):698-702, doi:10.1001/jama.1994.03510330076038;
# 2. writes the metafor 3.8.1 numbers the notebook asserts as literals to
#    tests/fixtures/regression_influence_notebook_reference.json.
# REML is run with threshold = 1e-12 (metafor's default stops Fisher scoring at a change below 1e-5;
# meta solves to machine precision), so the notebook can assert to 1e-8.
suppressMessages({library(metafor); library(metadat); library(jsonlite)})
stopifnot(packageVersion("metafor") == "3.8.1", packageVersion("metadat") == "1.2.0")
CTRL <- list(threshold = 1e-12, maxiter = 1000)

bcg <- dat.bcg
write.csv(bcg, "notebooks/data/bcg.csv", row.names = FALSE)

es <- escalc(measure = "RR", ai = tpos, bi = tneg, ci = cpos, di = cneg, data = bcg,
             slab = paste(author, year, sep = ", "))
res <- rma(yi, vi, data = es, method = "REML", control = CTRL)
print(res)
pooled <- list(estimate = c(res$beta), se = res$se, zval = res$zval, ci_lb = res$ci.lb, ci_ub = res$ci.ub,
               tau2 = res$tau2, QE = res$QE, I2 = res$I2,
               rr = exp(c(res$beta)), rr_ci_lb = exp(res$ci.lb), rr_ci_ub = exp(res$ci.ub))

mh <- rma.mh(ai = tpos, bi = tneg, ci = cpos, di = cneg, data = bcg, measure = "RR")
print(mh)
mantel <- list(estimate = c(mh$beta), se = mh$se, ci_lb = mh$ci.lb, ci_ub = mh$ci.ub, QE = mh$QE, I2 = mh$I2,
               rr = exp(c(mh$beta)))

reg <- rma(yi, vi, mods = ~ ablat, data = es, method = "REML", control = CTRL)
print(reg)
pr <- predict(reg, newmods = c(10, 30, 50), transf = exp)
print(pr)
regression <- list(beta = unname(c(reg$beta)), se = unname(reg$se), zval = unname(reg$zval),
                   pval = unname(reg$pval), tau2 = reg$tau2, QM = reg$QM, QMp = reg$QMp, QE = reg$QE,
                   I2 = reg$I2, R2 = reg$R2,
                   pred_rr = unname(pr$pred), pred_rr_ci_lb = unname(pr$ci.lb), pred_rr_ci_ub = unname(pr$ci.ub))

inf <- influence(res)
print(inf)
pdf(NULL)  # baujat() draws; keep R from writing Rplots.pdf
b <- baujat(res)
invisible(dev.off())
ip <- inf$inf
influence_ref <- list(rstudent = unname(ip$rstudent), cook_d = unname(ip$cook.d),
                      tau2_del = unname(ip$tau2.del),
                      hat = unname(ip$hat), dfbetas = unname(inf$dfbs$intrcpt),
                      is_infl = unname(inf$is.infl), baujat_x = unname(b$x), baujat_y = unname(b$y))

ref <- list(metafor = as.character(packageVersion("metafor")), metadat = as.character(packageVersion("metadat")),
            yi = as.numeric(es$yi), vi = as.numeric(es$vi), pooled = pooled, mh = mantel,
            regression = regression, influence = influence_ref)
writeLines(toJSON(ref, digits = NA, auto_unbox = TRUE, null = "null", na = "null"),
           "tests/fixtures/regression_influence_notebook_reference.json")
