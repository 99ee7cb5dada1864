# Reference values for tests/test_multilevel.py and tests/test_vcalc.py.
# Produced with R metafor 3.8.1 (+ metadat, clubSandwich, jsonlite):
#   Rscript tests/r/multilevel_reference.R   (from the repository root)
# writes tests/fixtures/multilevel_reference.json (17 significant digits).
#
# rma.mv is run with tight optimiser settings (nlminb rel.tol = 1e-10,
# iter.max/eval.max 10000) so that the reference is the converged maximum of
# the (restricted) likelihood, not nlminb's default stopping point; confint()
# (profile-likelihood CIs of the variance components) with uniroot tol 1e-10
# (default eps^0.25 moves the bounds by ~1e-4).
# I2 per level: metafor FAQ "I^2 for multilevel and multivariate models"
# (Cheung 2014): P = W - W X (X'WX)^-1 X'W with W = V^-1,
# I2_l = 100 sigma2_l / (sum(sigma2) + (k - p) / tr(P)).
suppressMessages({library(metafor); library(clubSandwich); library(jsonlite)})
stopifnot(packageVersion("metafor") == "3.8.1")

CTRL <- list(rel.tol = 1e-10, iter.max = 10000, eval.max = 10000)

i2_levels <- function(res) {
  W <- solve(res$V)
  X <- model.matrix(res)
  P <- W - W %*% X %*% solve(t(X) %*% W %*% X) %*% t(X) %*% W
  typ <- (res$k - res$p) / sum(diag(P))
  list(i2 = 100 * res$sigma2 / (sum(res$sigma2) + typ), i2_total = 100 * sum(res$sigma2) / (sum(res$sigma2) + typ),
       typical_v = typ)
}

out_fit <- function(res, with_ci = TRUE) {
  fs <- fitstats(res)
  o <- list(beta = unname(c(res$beta)), se = unname(res$se), stat = unname(res$zval), pval = unname(res$pval),
            ci_lb = unname(res$ci.lb), ci_ub = unname(res$ci.ub), vb = unname(res$vb),
            sigma2 = res$sigma2, s_nlevels = unname(res$s.nlevels),
            logLik = c(logLik(res)), deviance = c(deviance(res)), AIC = c(AIC(res)), BIC = c(BIC(res)),
            AICc = fs[5, 1],
            QE = res$QE, QEp = res$QEp, QE_df = res$k - res$p,
            QM = res$QM, QMdf = res$QMdf, QMp = res$QMp, ddf = unname(res$ddf),
            fitted = unname(c(fitted(res))), resid = unname(c(residuals(res))),
            weights = unname(weights(res)), k = res$k, p = res$p)
  if (all(is.finite(eigen(res$V, only.values = TRUE)$values)) && min(eigen(res$V, only.values = TRUE)$values) > 1e-12)
    o <- c(o, i2_levels(res))
  if (with_ci) {
    cis <- list()
    for (j in seq_along(res$sigma2)) {
      if (res$vc.fix$sigma2[j]) { cis[[j]] <- list(estimate = res$sigma2[j], lb = NA, ub = NA); next }
      ci <- confint(res, sigma2 = j, control = list(tol = 1e-10))
      cis[[j]] <- list(estimate = ci$random[1, 1], lb = ci$random[1, 2], ub = ci$random[1, 3])
    }
    o$confint <- cis
  }
  o
}

cases <- list()
add <- function(name, data, yi, V, random, mods = NULL, method = "REML", test = "z", dfs = "residual",
                intercept = TRUE, note = "", with_ci = TRUE, vfull = FALSE, groups) {
  warn <- character(0)
  args <- list(yi = yi, V = V, random = random, data = data, method = method, test = test, dfs = dfs,
               intercept = intercept, control = CTRL)
  if (!is.null(mods)) args$mods <- mods
  fitw <- function(args) withCallingHandlers(
    do.call(rma.mv, args),
    warning = function(w) { warn <<- c(warn, conditionMessage(w)); invokeRestart("muffleWarning") })
  ## nlminb may report non-convergence at rel.tol 1e-10 when the maximum is on the boundary
  ## (a component at 0 is log(sigma2) -> -Inf); then metafor's default settings are used
  control <- "tight"
  res <- tryCatch(fitw(args), error = function(e) NULL)
  if (is.null(res)) { args$control <- list(); control <- "default"; res <- fitw(args) }
  message(name, ": control ", control)
  o <- out_fit(res, with_ci)
  o$warnings <- warn
  X <- model.matrix(res)
  case <- list(name = name, note = note, method = method, test = test, dfs = dfs,
               control = control, random = paste(deparse(random), collapse = ""), yi = unname(c(yi)),
               X = unname(X), groups = groups, fit = o)
  if (vfull) {
    nz <- which(V != 0, arr.ind = TRUE)
    case$V_triplets <- unname(cbind(nz[, 1] - 1, nz[, 2] - 1, V[nz]))
    case$k <- nrow(V)
  } else {
    case$vi <- unname(c(V))
  }
  cases[[length(cases) + 1]] <<- case
}

## dat.konstantopoulos2011: schools within districts (Konstantopoulos 2011)
d <- dat.konstantopoulos2011
gk <- list(district = d$district, school = d$school, year = d$year)
for (m in c("REML", "ML")) for (t in c("z", "t")) for (dfs in c("residual", "contain")) {
  if (t == "z" && dfs == "contain") next
  add(paste("konstantopoulos", m, t, dfs), d, d$yi, d$vi, ~ 1 | district/school, method = m, test = t, dfs = dfs,
      groups = gk)
  add(paste("konstantopoulos year", m, t, dfs), d, d$yi, d$vi, ~ 1 | district/school, mods = ~ I(year - 1990),
      method = m, test = t, dfs = dfs, groups = gk)
}
add("konstantopoulos single factor", d, d$yi, d$vi, ~ 1 | district, groups = gk)
add("konstantopoulos three levels", d, d$yi, d$vi, ~ 1 | year/district/school, groups = gk)

## one cluster of one effect: district 11 keeps only its first school
d1 <- d[!(d$district == 11 & d$school > 1), ]
add("konstantopoulos one singleton cluster", d1, d1$yi, d1$vi, ~ 1 | district/school,
    groups = list(district = d1$district, school = d1$school))

## dat.assink2016 with the CHE working model's V (vcalc, rho = 0.6 within study)
a <- dat.assink2016
Va <- vcalc(vi, cluster = study, obs = esid, rho = 0.6, data = a)
ga <- list(study = a$study, esid = a$esid, deltype = a$deltype, pubstatus = a$pubstatus)
add("assink che", a, a$yi, Va, ~ 1 | study/esid, vfull = TRUE, groups = ga)
add("assink che ML", a, a$yi, Va, ~ 1 | study/esid, method = "ML", vfull = TRUE, groups = ga)
add("assink che deltype", a, a$yi, Va, ~ 1 | study/esid, mods = ~ factor(deltype), vfull = TRUE, groups = ga)
add("assink che deltype t contain", a, a$yi, Va, ~ 1 | study/esid, mods = ~ factor(deltype), test = "t",
    dfs = "contain", vfull = TRUE, groups = ga)
add("assink che year ML t", a, a$yi, Va, ~ 1 | study/esid, mods = ~ year, method = "ML", test = "t",
    vfull = TRUE, groups = ga)
add("assink diag three levels", a, a$yi, a$vi, ~ 1 | pubstatus/study/esid, groups = ga)
add("assink diag component at zero", a, a$yi, a$vi, ~ 1 | deltype/study/esid, groups = ga,
    note = "sigma2.1 (deltype) at the boundary 0")
## crossed random effects: study and type of delinquency (one dense block)
res <- rma.mv(yi, vi, random = list(~ 1 | study, ~ 1 | deltype), data = a, control = CTRL)
cases[[length(cases) + 1]] <- list(name = "assink crossed study + deltype", note = "", method = "REML", test = "z",
  dfs = "residual", control = "tight", random = "crossed", random_terms = c("~ 1 | study", "~ 1 | deltype"),
  yi = a$yi, X = unname(model.matrix(res)), groups = ga, fit = out_fit(res, with_ci = FALSE), vi = a$vi)
ao <- a[a$deltype == "overt", ]
add("assink overt component at zero", ao, ao$yi, ao$vi, ~ 1 | study/esid,
    groups = list(study = ao$study, esid = ao$esid), note = "sigma2.2 at 0")
ac <- a[a$deltype == "covert", ]
add("assink covert single-level factor", ac, ac$yi, ac$vi, ~ 1 | study/esid,
    groups = list(study = ac$study, esid = ac$esid), note = "one study: sigma2.1 fixed to 0 by metafor")

## dat.berkey1998: two outcomes per trial, V the full block matrix of v1i/v2i
b <- dat.berkey1998
Vb <- bldiag(lapply(split(b[, c("v1i", "v2i")], b$trial), as.matrix))
gb <- list(trial = b$trial, outcome = as.character(b$outcome))
add("berkey outcome ~1|trial", b, b$yi, Vb, ~ 1 | trial, mods = ~ outcome - 1, intercept = FALSE, vfull = TRUE,
    groups = gb)
add("berkey outcome ~1|trial/outcome", b, b$yi, Vb, ~ 1 | trial/outcome, mods = ~ outcome - 1, intercept = FALSE,
    vfull = TRUE, groups = gb)
add("berkey intercept ~1|trial", b, b$yi, Vb, ~ 1 | trial, vfull = TRUE, groups = gb)

## multivariate: random = ~ outcome | trial with struct = "UN" (and "CS", "DIAG"): tau2, rho, G
for (st in c("UN", "CS", "DIAG")) for (m in c("REML", "ML")) {
  res <- rma.mv(yi, Vb, mods = ~ outcome - 1, random = ~ outcome | trial, struct = st, data = b, method = m,
                control = CTRL)
  o <- out_fit(res, with_ci = FALSE)
  o$tau2 <- res$tau2; o$rho <- res$rho; o$G <- unname(res$G)
  if (st == "UN" && m == "REML") {  # profile-likelihood CIs of tau2 and rho
    o$confint_tau2 <- lapply(1:2, function(j) { ci <- confint(res, tau2 = j, control = list(tol = 1e-10))$random
                                                 list(estimate = ci[1, 1], lb = ci[1, 2], ub = ci[1, 3]) })
    ci <- confint(res, rho = 1, control = list(tol = 1e-10))$random
    o$confint_rho <- list(list(estimate = ci[1, 1], lb = ci[1, 2], ub = ci[1, 3]))
  }
  nz <- which(Vb != 0, arr.ind = TRUE)
  cases[[length(cases) + 1]] <- list(name = paste("berkey ~outcome|trial", st, m), note = "", method = m, test = "z",
    dfs = "residual", control = "tight", random = "~ outcome | trial", struct = st, yi = b$yi, X = unname(model.matrix(res)),
    groups = gb, fit = o, V_triplets = unname(cbind(nz[, 1] - 1, nz[, 2] - 1, Vb[nz])), k = nrow(Vb))
  message("berkey UN ", st, " ", m)
}
res <- rma.mv(yi, Vb, mods = ~ outcome - 1, random = ~ outcome | trial, struct = "UN", data = b, test = "t",
              dfs = "contain", control = CTRL)
o <- out_fit(res, with_ci = FALSE); o$tau2 <- res$tau2; o$rho <- res$rho; o$G <- unname(res$G)
nz <- which(Vb != 0, arr.ind = TRUE)
cases[[length(cases) + 1]] <- list(name = "berkey ~outcome|trial UN REML t contain", note = "", method = "REML",
  test = "t", dfs = "contain", control = "tight", random = "~ outcome | trial", struct = "UN", yi = b$yi,
  X = unname(model.matrix(res)), groups = gb, fit = o, V_triplets = unname(cbind(nz[, 1] - 1, nz[, 2] - 1, Vb[nz])),
  k = nrow(Vb))

## an ~ 1 | grp term beside the UN term (grp: two groups of trials; its sigma2 goes to 0)
b$grp <- c(1, 1, 1, 1, 2, 2, 2, 2, 2, 2)
res <- rma.mv(yi, Vb, mods = ~ outcome - 1, random = list(~ 1 | grp, ~ outcome | trial), struct = "UN", data = b,
              control = CTRL)
o <- out_fit(res, with_ci = FALSE); o$tau2 <- res$tau2; o$rho <- res$rho; o$G <- unname(res$G)
cases[[length(cases) + 1]] <- list(name = "berkey ~1|grp + ~outcome|trial UN", note = "", method = "REML",
  test = "z", dfs = "residual", control = "tight", random = c("~ 1 | grp", "~ outcome | trial"), struct = "UN",
  yi = b$yi, X = unname(model.matrix(res)), groups = c(gb, list(grp = b$grp)), fit = o,
  V_triplets = unname(cbind(nz[, 1] - 1, nz[, 2] - 1, Vb[nz])), k = nrow(Vb))

## all clusters of one effect: the two components are not identifiable (only their sum)
bcg <- escalc("RR", ai = tpos, bi = tneg, ci = cpos, di = cneg, data = dat.bcg)
bcg$es <- 1
add("bcg one effect per cluster", bcg, bcg$yi, bcg$vi, ~ 1 | trial/es, groups = list(trial = bcg$trial, es = bcg$es),
    note = "sigma2 split equally by metafor's symmetric start", with_ci = FALSE)
add("bcg single factor", bcg, bcg$yi, bcg$vi, ~ 1 | trial, groups = list(trial = bcg$trial, es = bcg$es))

## a cluster with 30 effects (simulated; the data are stored below)
set.seed(20261207)
cl <- c(rep(1, 30), rep(2:9, each = 3))
es <- ave(cl, cl, FUN = seq_along)
u <- rnorm(9, 0, 0.3)[cl]; e <- rnorm(length(cl), 0, 0.2)
vs <- runif(length(cl), 0.01, 0.1)
ys <- 0.2 + u + e + rnorm(length(cl), 0, sqrt(vs))
sim <- data.frame(cl = cl, es = es, yi = ys, vi = vs)
Vs <- vcalc(vi, cluster = cl, obs = es, rho = 0.5, data = sim)
add("sim cluster of 30", sim, sim$yi, Vs, ~ 1 | cl/es, vfull = TRUE, groups = list(cl = cl, es = es))

## singular V: rho = 1 within study makes each study's block rank one
Vsing <- vcalc(vi, cluster = study, obs = esid, rho = 1, data = a)
sing <- tryCatch({
  w <- character(0)
  r <- withCallingHandlers(rma.mv(yi, Vsing, random = ~ 1 | study/esid, data = a, control = CTRL),
                           warning = function(x) { w <<- c(w, conditionMessage(x)); invokeRestart("muffleWarning") })
  list(ok = TRUE, warnings = w, sigma2 = r$sigma2, beta = c(r$beta), se = r$se, logLik = c(logLik(r)), QE = r$QE)
}, error = function(e) list(ok = FALSE, error = conditionMessage(e)))

trip <- function(V) { nz <- which(V != 0, arr.ind = TRUE); unname(cbind(nz[, 1] - 1, nz[, 2] - 1, V[nz])) }
## vcalc vs clubSandwich::impute_covariance_matrix
imp <- impute_covariance_matrix(a$vi, a$study, r = 0.6, return_list = FALSE)
vc_cases <- list()
for (rho in c(0.6, 0, 0.9)) {
  Vr <- vcalc(vi, cluster = study, obs = esid, rho = rho, data = a)
  nz <- which(Vr != 0, arr.ind = TRUE)
  vc_cases[[length(vc_cases) + 1]] <- list(rho = rho, V_triplets = unname(cbind(nz[, 1] - 1, nz[, 2] - 1, Vr[nz])))
}
## shuffled rows: clusters not contiguous; repeated obs within a cluster = the same observation (r = 1)
set.seed(1)
ord <- sample(nrow(a))
as <- a[ord, ]
Vsh <- vcalc(vi, cluster = study, obs = esid, rho = 0.6, data = as)
imp_sh <- impute_covariance_matrix(as$vi, as$study, r = 0.6, return_list = FALSE)
obs_rep <- c(1, 1, 2, 1, 2, 3)
Vrep <- vcalc(c(0.1, 0.2, 0.3, 0.4, 0.5, 0.6), cluster = c(1, 1, 1, 2, 2, 2), obs = obs_rep, rho = 0.5)

## cluster-robust (CR2) tests of the CHE fit (clubSandwich coef_test): what meta.robust computes from the fit's
## X, yi, W and cluster
res_che <- rma.mv(yi, Va, random = ~ 1 | study/esid, mods = ~ factor(deltype), data = a, control = CTRL)
ct <- coef_test(res_che, vcov = "CR2")
che_cr2 <- list(beta = unname(ct$beta), se = unname(ct$SE), tstat = unname(ct$tstat), df = unname(ct$df_Satt),
                pval = unname(ct$p_Satt))

ref <- list(
  metafor = as.character(packageVersion("metafor")),
  clubSandwich = as.character(packageVersion("clubSandwich")),
  cases = cases,
  singular = sing,
  che_cr2 = che_cr2,
  sim_data = list(cl = cl, es = es, yi = ys, vi = vs),
  vcalc = list(study = a$study, esid = a$esid, vi = a$vi, cases = vc_cases,
               impute_max_abs_diff = max(abs(imp - vcalc(vi, cluster = study, obs = esid, rho = 0.6, data = a))),
               impute = trip(imp),
               shuffled = list(order = ord - 1, V_triplets = trip(Vsh), impute = trip(imp_sh)),
               repeated = list(vi = c(0.1, 0.2, 0.3, 0.4, 0.5, 0.6), cluster = c(1, 1, 1, 2, 2, 2), obs = obs_rep,
                               V = unname(Vrep))))
writeLines(toJSON(ref, digits = NA, auto_unbox = TRUE, null = "null", na = "null", matrix = "rowmajor"),
           "tests/fixtures/multilevel_reference.json")
