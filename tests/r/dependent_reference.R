# Reference values for tests/test_dependent.py (meta.review.running.dependent: every row of every cohort).
# Produced with R metafor 3.8.1, clubSandwich 0.5.8, metadat (+ jsonlite):
#   Rscript tests/r/dependent_reference.R   (from the repository root)
# writes tests/fixtures/dependent_reference.json (17 significant digits).
#
# The all-rows sensitivity is the CHE working model (Pustejovsky & Tipton 2022): V from
# clubSandwich::impute_covariance_matrix(vi, cluster, r), rma.mv(yi, V, random = ~ 1 | cohort/es_id,
# method = "REML"), and clubSandwich::conf_int(vcov = "CR2") (Satterthwaite df), at r = 0.2, 0.5, 0.6, 0.8.
# Cases: dat.assink2016 studies 1-8 (several effects per study), the same with only 3 studies
# (Satterthwaite df < 4), and one study with a single effect among studies with several.
suppressMessages({library(metafor); library(clubSandwich); library(jsonlite); library(metadat)})
stopifnot(packageVersion("metafor") == "3.8.1", packageVersion("clubSandwich") == "0.5.8")

che_fit <- function(d, r) {
  V <- impute_covariance_matrix(d$vi, cluster = d$cohort, r = r, return_list = FALSE)
  res <- rma.mv(yi, V, random = ~ 1 | cohort / es_id, data = d, method = "REML",
                control = list(rel.tol = 1e-10, iter.max = 1000, eval.max = 2000))
  ci <- conf_int(res, vcov = "CR2", cluster = d$cohort)
  list(r = r, estimate = unname(ci$beta[1]), se = unname(ci$SE[1]), df = unname(ci$df[1]),
       ci_low = unname(ci$CI_L[1]), ci_high = unname(ci$CI_U[1]),
       p = unname(coef_test(res, vcov = "CR2", cluster = d$cohort)$p_Satt[1]),
       sigma2 = unname(res$sigma2), logLik = as.numeric(logLik(res)))
}

case <- function(d) {
  d$es_id <- seq_len(nrow(d))
  list(yi = d$yi, vi = d$vi, cohort = as.character(d$cohort),
       fits = lapply(c(0.2, 0.5, 0.6, 0.8), function(r) che_fit(d, r)))
}

a <- dat.assink2016
a$cohort <- paste0("s", a$study)
eight <- a[a$study %in% 1:8, c("yi", "vi", "cohort")]
three <- a[a$study %in% 1:3, c("yi", "vi", "cohort")]
single <- rbind(a[a$study %in% 1:5, c("yi", "vi", "cohort")], a[a$study == 6, c("yi", "vi", "cohort")][1, ])

out <- list(metafor = as.character(packageVersion("metafor")),
            clubSandwich = as.character(packageVersion("clubSandwich")),
            cases = list(assink_1to8 = case(eight), assink_1to3 = case(three), with_single = case(single)))
writeLines(toJSON(out, digits = 17, auto_unbox = TRUE), "tests/fixtures/dependent_reference.json")
