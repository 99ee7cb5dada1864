# Reference values for tests/test_escalc.py, tests/test_binary.py and tests/test_measure_labels.py.
# Produced with R metafor 3.8.1 + metadat (dat.bcg, dat.normand1999, dat.mcdaniel1994; Morris
# 2008's pre-post data typed in from metafor's escalc help) and jsonlite:
#   Rscript tests/r/escalc_reference.R   (from the repository root)
# writes tests/fixtures/escalc_reference.json (17 significant digits). Each case stores its
# inputs, so the tests need neither R nor metadat.
#
# Cases: escalc() for every measure of meta.escalc and every vtype, the add/to/drop00
# continuity corrections on a hand-made set of adversarial 2x2 tables (a zero cell in one
# arm, no events in both arms, only events in both arms, an all-zero table), rma.mh() for
# OR/RR/RD (level, correct, add/to/drop00 variants) and rma.peto() with weights(), and
# rma(method="DL") on escalc("OR") of dat.bcg with predict(transf=exp) for the back-transformed
# summary, cumul(order = year) and leave1out() with slab = author; rma() on escalc("ZCOR") of
# dat.mcdaniel1994 with predict(transf=transf.ztor).
suppressMessages({library(metafor); library(metadat); library(jsonlite)})
stopifnot(packageVersion("metafor") == "3.8.1")

num <- function(x) { x <- as.numeric(x); x }
es <- function(name, measure, args, opts = list()) {
  d <- suppressWarnings(do.call(escalc, c(list(measure = measure), args, opts)))
  list(name = name, measure = measure, args = lapply(args, num), opts = opts,
       yi = num(d$yi), vi = num(d$vi))
}

cases <- list()
add_case <- function(x) cases[[length(cases) + 1]] <<- x

bcg <- dat.bcg
tab_bcg <- list(ai = bcg$tpos, bi = bcg$tneg, ci = bcg$cpos, di = bcg$cneg)
for (m in c("OR", "RR", "PETO")) add_case(es(paste0("bcg_", m), m, tab_bcg))
for (v in c("LS", "UB", "AV")) add_case(es(paste0("bcg_RD_", v), "RD", tab_bcg, list(vtype = v)))
add_case(es("bcg_OR_n", "OR", list(ai = bcg$tpos, ci = bcg$cpos, n1i = bcg$tpos + bcg$tneg,
                                    n2i = bcg$cpos + bcg$cneg)))

# adversarial tables: ordinary, zero in one arm, zero events both arms, all events both arms,
# all-zero table, zero non-events in one arm
adv <- list(ai = c(4, 0, 0, 10, 0, 7), bi = c(16, 20, 15, 0, 0, 0), ci = c(8, 5, 0, 12, 0, 3),
            di = c(12, 15, 15, 0, 0, 9))
for (m in c("OR", "RR", "RD", "PETO"))
  for (to in c("only0", "all", "if0all", "none"))
    for (drop00 in c(FALSE, TRUE))
      for (add in c(0.5, 1))
        add_case(es(sprintf("adv_%s_%s_%s_%g", m, to, drop00, add), m, adv,
                    list(to = to, drop00 = drop00, add = add)))

nd <- dat.normand1999
two <- list(m1i = nd$m1i, m2i = nd$m2i, sd1i = nd$sd1i, sd2i = nd$sd2i, n1i = nd$n1i, n2i = nd$n2i)
for (v in c("LS", "UB", "HO")) add_case(es(paste0("normand_MD_", v), "MD", two, list(vtype = v)))
for (v in c("LS", "UB", "LS2", "AV")) add_case(es(paste0("normand_SMD_", v), "SMD", two, list(vtype = v)))
for (v in c("LS", "HO", "AV", "AVHO")) add_case(es(paste0("normand_ROM_", v), "ROM", two, list(vtype = v)))
add_case(es("smd_di", "SMD", list(di = c(0.5, -0.2, 1.1), n1i = c(10, 20, 15), n2i = c(12, 18, 15))))
add_case(es("smd_ti", "SMD", list(ti = c(2.1, -0.4, 3.3), n1i = c(10, 20, 15), n2i = c(12, 18, 15))))

mc <- dat.mcdaniel1994
add_case(es("mcdaniel_ZCOR", "ZCOR", list(ri = mc$ri, ni = mc$ni)))
for (v in c("LS", "AV")) add_case(es(paste0("mcdaniel_COR_", v), "COR", list(ri = mc$ri, ni = mc$ni), list(vtype = v)))

# Morris (2008), treatment group (as in metafor's help for escalc): post (1) minus pre (2)
pp <- list(m1i = c(38.5, 26.8, 0.7, 75.9, 36.0), m2i = c(30.6, 23.5, 0.5, 53.4, 35.6),
           sd1i = c(11.6, 4.1, 0.1, 4.4, 4.6), sd2i = c(15.0, 3.1, 0.1, 14.5, 4.7),
           ri = c(0.47, 0.64, 0.77, 0.89, 0.44), ni = c(20, 50, 9, 10, 14))
add_case(es("morris_MC", "MC", pp))
for (v in c("LS", "LS2")) {
  add_case(es(paste0("morris_SMCC_", v), "SMCC", pp, list(vtype = v)))
  add_case(es(paste0("morris_SMCR_", v), "SMCR", pp[c("m1i", "m2i", "sd1i", "ri", "ni")], list(vtype = v)))
}

# ---------------------------------------------------------------- rma.mh / rma.peto
mh_fields <- function(f) list(
  k = f$k, k_yi = f$k.yi, k_pos = f$k.pos, estimate = c(f$beta), se = f$se, zval = f$zval,
  pval = f$pval, ci_low = f$ci.lb, ci_high = f$ci.ub, q = f$QE, q_p = f$QEp, i2 = f$I2, h2 = f$H2,
  co = f$CO, co_p = f$COp, cmh = f$MH, cmh_p = f$MHp, bd = f$BD, bd_p = f$BDp,
  tarone = f$TA, tarone_p = f$TAp, yi = num(f$yi), vi = num(f$vi), weights = num(weights(f)),
  yi_f = num(f$yi.f))
mh <- function(name, args, opts = list()) {
  f <- suppressWarnings(do.call(rma.mh, c(args, opts)))
  c(list(name = name, args = lapply(args, num), opts = opts), mh_fields(f))
}
peto <- function(name, args, opts = list()) {
  f <- suppressWarnings(do.call(rma.peto, c(args, opts)))
  list(name = name, args = lapply(args, num), opts = opts, k = f$k, k_yi = f$k.yi, k_pos = f$k.pos,
       estimate = c(f$beta), se = f$se, zval = f$zval, pval = f$pval, ci_low = f$ci.lb,
       ci_high = f$ci.ub, q = f$QE, q_p = f$QEp, i2 = f$I2, h2 = f$H2, yi = num(f$yi), vi = num(f$vi),
       weights = num(weights(f)), yi_f = num(f$yi.f))
}
adv_mh <- list(ai = c(4, 0, 0, 10, 6, 7), bi = c(16, 20, 15, 0, 14, 3), ci = c(8, 5, 0, 12, 9, 3),
               di = c(12, 15, 15, 0, 11, 9))
mhs <- list()
for (m in c("OR", "RR", "RD")) {
  mhs[[length(mhs) + 1]] <- mh(paste0("bcg_", m), tab_bcg, list(measure = m))
  mhs[[length(mhs) + 1]] <- mh(paste0("bcg_", m, "_90"), tab_bcg, list(measure = m, level = 90))
  mhs[[length(mhs) + 1]] <- mh(paste0("adv_", m), adv_mh, list(measure = m))
  mhs[[length(mhs) + 1]] <- mh(paste0("adv_", m, "_add"), adv_mh,
                               list(measure = m, add = c(0.5, 0.5), to = c("only0", "only0"),
                                    drop00 = c(FALSE, FALSE)))
  mhs[[length(mhs) + 1]] <- mh(paste0("adv_", m, "_all"), adv_mh,
                               list(measure = m, add = c(1, 0.5), to = c("all", "all"),
                                    drop00 = c(TRUE, TRUE)))
}
mhs[[length(mhs) + 1]] <- mh("bcg_OR_nocorrect", tab_bcg, list(measure = "OR", correct = FALSE))
# a homogeneous-looking set with an odds ratio of 1 exactly (Breslow-Day's N11 branch)
mhs[[length(mhs) + 1]] <- mh("or_one", list(ai = c(5, 10), bi = c(5, 10), ci = c(5, 10), di = c(5, 10)),
                             list(measure = "OR"))
petos <- list(peto("bcg", tab_bcg), peto("bcg_90", tab_bcg, list(level = 90)), peto("adv", adv_mh),
              peto("adv_all", adv_mh, list(add = c(0.5, 0.5), to = c("all", "all"), drop00 = c(FALSE, FALSE))))

# ---------------------------------------------------------------- a fit that knows its measure
d <- escalc("OR", ai = tpos, bi = tneg, ci = cpos, di = cneg, data = dat.bcg)
f <- rma(yi, vi, data = d, method = "DL")
p <- predict(f, transf = exp)
labels <- list(estimate = c(f$beta), ci_low = f$ci.lb, ci_high = f$ci.ub, pi_low = p$pi.lb, pi_high = p$pi.ub,
               exp_estimate = p$pred, exp_ci_low = p$ci.lb, exp_ci_high = p$ci.ub,
               exp_pi_low = p$pi.lb, exp_pi_high = p$pi.ub, tau2 = f$tau2,
               yi = num(d$yi), vi = num(d$vi), year = dat.bcg$year, author = dat.bcg$author)
cu <- cumul(f, order = dat.bcg$year)
labels$cumul_year <- list(slab = as.character(cu$slab), estimate = num(cu$estimate), ci_low = num(cu$ci.lb),
                          ci_high = num(cu$ci.ub))
f_sl <- rma(yi, vi, data = d, method = "DL", slab = author)
l1 <- leave1out(f_sl)
labels$leave1out <- list(slab = as.character(l1$slab), estimate = num(l1$estimate))
z <- escalc("ZCOR", ri = ri, ni = ni, data = dat.mcdaniel1994)
fz <- rma(yi, vi, data = z, method = "DL")
pz <- predict(fz, transf = transf.ztor)
labels$zcor <- list(yi = num(z$yi), vi = num(z$vi), r_estimate = pz$pred, r_ci_low = pz$ci.lb, r_ci_high = pz$ci.ub)

out <- list(metafor = as.character(packageVersion("metafor")), R = R.version.string,
            escalc = cases, rma_mh = mhs, rma_peto = petos, labels = labels)
num17 <- function(x) {
  if (is.list(x)) return(lapply(x, num17))
  if (is.numeric(x) || is.logical(x) && all(is.na(x))) {
    s <- ifelse(is.na(x), "null", sprintf("%.17g", as.numeric(x)))
    return(structure(if (length(x) == 1) s else paste0("[", paste(s, collapse = ","), "]"), class = "json"))
  }
  x
}
writeLines(toJSON(num17(out), auto_unbox = TRUE, json_verbatim = TRUE, null = "null", pretty = FALSE),
           "tests/fixtures/escalc_reference.json")
cat("wrote tests/fixtures/escalc_reference.json\n")
