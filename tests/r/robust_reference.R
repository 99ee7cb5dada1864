# Reference values for tests/test_robust.py (meta.robust).
# Produced with R metafor 3.8.1, clubSandwich 0.5.8, metadat (+ jsonlite):
#   Rscript tests/r/robust_reference.R   (from the repository root)
# writes tests/fixtures/robust_reference.json (17 significant digits).
#
# For every model the INPUTS of the cluster-robust computation are exported
# (X = model.matrix(res), yi, beta, cluster, and the marginal covariance
# M = res$M for rma.mv, or vi and tau2 for rma.uni, where M = diag(vi + tau2)),
# so the Python core is fed exactly R's fitted model and compared with
#   clubSandwich::vcovCR (CR0, CR1, CR1p, CR1S, CR2, CR3, CR4),
#   clubSandwich::coef_test (z, naive-t, naive-tp, Satterthwaite, saddlepoint),
#   clubSandwich::conf_int (Satterthwaite and naive-tp; 95% and 90%),
#   clubSandwich::Wald_test (chi-sq, Naive-F, Naive-Fp, HTA, HTB, HTZ, EDF, EDT),
#   metafor::robust (CR1 default, adjust = FALSE / "Stata1" / "Stata2", clubSandwich = TRUE with
#   its defaults and with vcov = "CR1", coef_test = "naive-tp", wald_test = "Naive-F").
# M is exported as its blocks by cluster (the script checks that M is zero
# outside them); the test rebuilds the full matrix.
suppressMessages({library(metafor); library(clubSandwich); library(jsonlite)})
stopifnot(packageVersion("metafor") == "3.8.1", packageVersion("clubSandwich") == "0.5.8")

mat <- function(m) {  # matrix -> list(dim, row-major values)
  m <- as.matrix(m)
  list(dim = dim(m), values = as.vector(t(m)))
}

err <- function(expr) {  # value, or the error message as a string
  tryCatch(expr, error = function(e) structure(conditionMessage(e), class = "r_error"))
}
is_err <- function(x) inherits(x, "r_error")

ctest <- function(x) list(coef = as.character(x$Coef), beta = x$beta, SE = x$SE, tstat = x$tstat,
                          df_z = x$df_z, p_z = x$p_z, df_t = x$df_t, p_t = x$p_t,
                          df_tp = x$df_tp, p_tp = x$p_tp, df_Satt = x$df_Satt, p_Satt = x$p_Satt)
cint <- function(x) list(beta = x$beta, SE = x$SE, df = x$df, CI_L = x$CI_L, CI_U = x$CI_U, p_val = x$p_val)
wtest <- function(x) list(test = as.character(x$test), Fstat = x$Fstat, delta = x$delta,
                          df_num = x$df_num, df_denom = x$df_denom, p_val = x$p_val)
rob <- function(r) {
  if (is_err(r)) return(list(error = unclass(r)))
  list(vbest = r$vbest, n = r$n, dfs = r$dfs, beta = c(r$beta), se = r$se, zval = r$zval, pval = r$pval,
       ci_lb = r$ci.lb, ci_ub = r$ci.ub, QM = r$QM, QMdf = r$QMdf, QMp = r$QMp, vb = mat(r$vb))
}

# everything clubSandwich and metafor say about one fitted model
case <- function(name, res, cluster, note = "", constraints = list(), target = NULL) {
  cluster <- as.character(cluster)
  p <- length(res$beta)
  out <- list(name = name, note = note, model = class(res)[1], X = mat(model.matrix(res)),
              coef = rownames(res$beta), yi = c(res$yi), beta = c(res$beta), vb = mat(res$vb),
              cluster = cluster, level = 0.95)
  if (inherits(res, "rma.mv")) {
    M <- as.matrix(res$M)
    blocks <- list(); mask <- matrix(FALSE, nrow(M), ncol(M))
    for (cl in unique(cluster)) {
      idx <- which(cluster == cl)
      blocks[[length(blocks) + 1]] <- list(rows = idx - 1L, M = mat(M[idx, idx, drop = FALSE]))
      mask[idx, idx] <- TRUE
    }
    stopifnot(all(M[!mask] == 0))
    out$M_blocks <- blocks
    if (!is.null(res$W)) out$W_diag <- diag(as.matrix(res$W))  # user weights (diagonal here)
  } else {
    out$vi <- res$vi; out$tau2 <- res$tau2
  }
  vc <- list()
  for (type in c("CR0", "CR1", "CR1p", "CR1S", "CR2", "CR3", "CR4")) {
    v <- err(vcovCR(res, cluster = cluster, type = type))
    if (is_err(v)) {  # CR3 needs every I - H_jj invertible
      vc[[type]] <- list(error = unclass(v))
      next
    }
    vc[[type]] <- mat(v)
    tests <- c("z", "naive-t", "naive-tp", "Satterthwaite")
    out$coef_test[[type]] <- ctest(coef_test(res, vcov = v, test = tests))
    sp <- err(coef_test(res, vcov = v, test = "saddlepoint"))
    out$saddlepoint[[type]] <- if (is_err(sp)) list(error = unclass(sp)) else
      list(saddlepoint = sp$saddlepoint, p_saddle = sp$p_saddle)
  }
  out$vcovCR <- vc
  v2 <- vcovCR(res, cluster = cluster, type = "CR2")
  out$conf_int <- list(
    satt95 = cint(conf_int(res, vcov = v2, level = 0.95, p_values = TRUE)),
    satt90 = cint(conf_int(res, vcov = v2, level = 0.90, p_values = TRUE)),
    tp95 = cint(conf_int(res, vcov = v2, level = 0.95, test = "naive-tp", p_values = TRUE)))
  wald_tests <- c("chi-sq", "Naive-F", "Naive-Fp", "HTA", "HTB", "HTZ", "EDF", "EDT")
  if (p > 1) constraints <- c(list(moderators = constrain_zero(2:p, coefs = coef(res))), constraints)
  out$wald <- lapply(constraints, function(C)
    list(C = mat(C), CR2 = wtest(Wald_test(res, constraints = C, vcov = v2, test = wald_tests)),
         CR1 = wtest(Wald_test(res, constraints = C, vcov = vcovCR(res, cluster = cluster, type = "CR1"),
                               test = wald_tests))))
  if (!is.null(target)) {  # an explicit working model: clubSandwich's inverse_var = FALSE branch
    vt <- vcovCR(res, cluster = cluster, type = "CR2", target = target, inverse_var = FALSE)
    out$target <- list(target = target, CR2 = mat(vt),
                       coef_test = ctest(coef_test(res, vcov = vt, test = "Satterthwaite")),
                       wald = if (p > 1) wtest(Wald_test(res, constraints = constrain_zero(2:p, coefs = coef(res)),
                                                         vcov = vt, test = wald_tests)) else NULL)
  }
  out$robust <- list(
    CR1 = rob(err(robust(res, cluster = cluster))),
    CR0 = rob(err(robust(res, cluster = cluster, adjust = FALSE))),
    clubSandwich = rob(err(suppressWarnings(robust(res, cluster = cluster, clubSandwich = TRUE)))),
    Stata1 = rob(err(robust(res, cluster = cluster, adjust = "Stata1"))),
    Stata2 = rob(err(robust(res, cluster = cluster, adjust = "Stata2"))),
    clubSandwich_CR1_tp = rob(err(suppressWarnings(robust(res, cluster = cluster, clubSandwich = TRUE, vcov = "CR1",
                                                          coef_test = "naive-tp", wald_test = "Naive-F")))))
  out
}

cases <- list()
add <- function(x) cases[[length(cases) + 1]] <<- x
ctrl <- list(threshold = 1e-12, maxiter = 1000)

# --- rma.uni ---------------------------------------------------------------
bcg <- escalc(measure = "RR", ai = tpos, bi = tneg, ci = cpos, di = cneg, data = dat.bcg)
r <- rma(yi, vi, data = bcg, method = "REML", control = ctrl)
add(case("bcg_reml_alloc", r, bcg$alloc, "dat.bcg RR, REML, intercept only; 3 clusters by allocation (Satterthwaite df < 4)"))
r <- rma(yi, vi, data = bcg, method = "DL")
add(case("bcg_dl_alloc", r, bcg$alloc, "dat.bcg RR, DL, intercept only; 3 clusters by allocation",
         target = bcg$vi))
r <- rma(yi, vi, data = bcg, method = "DL")
add(case("bcg_dl_trial", r, bcg$trial, "dat.bcg RR, DL, intercept only; every cluster one effect (CR2 = HC2-type)"))
r <- rma(yi, vi, mods = ~ ablat, data = bcg, method = "REML", control = ctrl)
add(case("bcg_ablat_trial", r, bcg$trial, "dat.bcg RR, REML, mods = ~ablat; every cluster one effect"))
r <- rma(yi, vi, mods = ~ ablat, data = bcg, method = "REML", control = ctrl)
add(case("bcg_ablat_singleton", r, c(rep(1:6, each = 2), 7),
         "dat.bcg RR, REML, mods = ~ablat; six clusters of two effects and one of one", target = bcg$vi + 0.1))
r <- rma(yi, vi, mods = ~ ablat + year, data = bcg, method = "REML", control = ctrl)
add(case("bcg_p_equals_J", r, bcg$alloc, "dat.bcg RR, mods = ~ablat + year: p = 3 = number of clusters (metafor robust() refuses)"))
# test = "knha": metafor robust() builds its bread from x$vb, which holds the Knapp-Hartung factor s2w
r <- rma(yi, vi, data = bcg, method = "DL", test = "knha")
knha <- list(s2w = r$s2w, robust = rob(robust(r, cluster = bcg$alloc)))
kon <- dat.konstantopoulos2011
r <- rma(yi, vi, mods = ~ year, data = kon, method = "REML", control = ctrl)
add(case("konst_uni_year", r, kon$district, "dat.konstantopoulos2011, rma.uni mods = ~year; 11 districts of 3-11 schools",
         target = kon$vi))

# --- rma.mv ----------------------------------------------------------------
r <- rma.mv(yi, vi, random = ~ 1 | district/school, data = kon)
add(case("konst_mv", r, kon$district, "dat.konstantopoulos2011, rma.mv random = ~1|district/school, cluster district"))
# metafor robust() does not need the random effects nested within the clusters (clubSandwich does):
# schools clustered by school alone, district effects linking them
nonnested <- list(case = "konst_mv", cluster = as.character(kon$study),
                  CR1 = rob(robust(r, cluster = kon$study)),
                  clubSandwich = unclass(err(robust(r, cluster = kon$study, clubSandwich = TRUE))))
r <- rma.mv(yi, vi, mods = ~ year, random = ~ 1 | district/school, data = kon)
add(case("konst_mv_year", r, kon$district, "dat.konstantopoulos2011, rma.mv mods = ~year"))
# user weights (W = diag(1/vi)) beside the model's M: clubSandwich takes Phi = M, inverse_var = FALSE
r <- rma.mv(yi, vi, W = 1 / vi, mods = ~ year, random = ~ 1 | district/school, data = kon)
add(case("konst_mv_userW", r, kon$district, "dat.konstantopoulos2011, rma.mv with W = diag(1/vi), mods = ~year"))
# Satterthwaite df with the working model M != W^-1 lose digits when X'WX is ill-conditioned (year ~ 1990
# beside an intercept): R's own values then move by ~1e-6 with the order of the cluster levels.  The slope's
# df do not depend on centring year, so the same models with year - 1990 (variance components held fixed)
# give well-conditioned references for the slope.
kon$yc <- kon$year - 1990
rc <- rma.mv(yi, vi, W = 1 / vi, mods = ~ yc, random = ~ 1 | district/school, data = kon, sigma2 = r$sigma2)
ru <- rma(yi, vi, mods = ~ yc, data = kon, tau2 = rma(yi, vi, mods = ~ year, data = kon, method = "REML",
                                                     control = ctrl)$tau2)
centred <- list(
  konst_mv_userW = lapply(c(CR0 = "CR0", CR2 = "CR2"), function(ty)
    coef_test(rc, vcov = ty, cluster = kon$district, test = "Satterthwaite")$df_Satt[2]),
  konst_uni_year_target = coef_test(ru, vcov = vcovCR(ru, cluster = kon$district, type = "CR2", target = kon$vi,
                                                      inverse_var = FALSE), test = "Satterthwaite")$df_Satt[2])
few <- droplevels(subset(kon, district %in% c(11, 12, 18)))
r <- rma.mv(yi, vi, random = ~ 1 | district/school, data = few)
add(case("konst_mv_few", r, few$district, "dat.konstantopoulos2011 districts 11, 12, 18 only: 3 clusters (df < 4)"))

ass <- dat.assink2016
V <- impute_covariance_matrix(ass$vi, cluster = ass$study, r = 0.6)
r <- rma.mv(yi, V, random = ~ 1 | study/esid, data = ass)
add(case("assink_mv", r, ass$study, "dat.assink2016, V imputed (r = 0.6), random = ~1|study/esid; 3 studies of one effect, one of 22"))
r <- rma.mv(yi, V, mods = ~ deltype, random = ~ 1 | study/esid, data = ass)
add(case("assink_deltype", r, ass$study, "dat.assink2016, mods = ~deltype (3 levels; Wald test q = 2)",
         constraints = list(equal = matrix(c(0, 1, -1), nrow = 1))))
r <- rma.mv(yi, V, mods = ~ year, random = ~ 1 | study/esid, data = ass)
add(case("assink_year", r, ass$study, "dat.assink2016, mods = ~year"))
# one cluster of 32 effects: studies 11 and 3 (sizes 22 and 10) merged into one cluster
big <- ass
big$cl <- ifelse(big$study %in% c(3, 11), 0, big$study)
big <- big[order(big$cl != 0), ]  # unsorted otherwise: keep the big cluster first
Vb <- impute_covariance_matrix(big$vi, cluster = big$cl, r = 0.6, return_list = FALSE)
r <- rma.mv(yi, Vb, mods = ~ deltype, random = ~ 1 | cl/esid, data = big)
stopifnot(max(table(big$cl)) == 32)
add(case("assink_big_cluster", r, big$cl, "dat.assink2016 with studies 3 and 11 as one cluster of 32 effects, mods = ~deltype"))

out <- list(metafor = as.character(packageVersion("metafor")),
            clubSandwich = as.character(packageVersion("clubSandwich")),
            R = R.version.string, cases = cases, knha = knha, centred = centred,
            nonnested = nonnested)
# jsonlite caps digits at 15; write every number with 17 significant digits
# (round-trips a double exactly) as verbatim JSON.
num17 <- function(x) {
  if (is.list(x)) return(lapply(x, num17))
  if (is.numeric(x) || is.logical(x) && all(is.na(x))) {
    s <- ifelse(is.na(x), "null", ifelse(is.infinite(x), ifelse(x > 0, "\"Inf\"", "\"-Inf\""),
                                          sprintf("%.17g", as.numeric(x))))
    return(structure(if (length(x) == 1) s else paste0("[", paste(s, collapse = ","), "]"), class = "json"))
  }
  x
}
writeLines(toJSON(num17(out), auto_unbox = TRUE, json_verbatim = TRUE, null = "null", pretty = FALSE),
           "tests/fixtures/robust_reference.json")
cat("wrote tests/fixtures/robust_reference.json\n")
