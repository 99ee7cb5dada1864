# Reference SMDs for tests/test_study_effects.py, computed by metafor escalc()
# directly from tests/fixtures/data_good/outcomes.csv (one value per route).
# Run from the repository root:  Rscript tests/r/study_effects_reference.R
# Writes tests/fixtures/study_effects_reference.json
suppressPackageStartupMessages({library(metafor); library(jsonlite)})

d <- read.csv("tests/fixtures/data_good/outcomes.csv", stringsAsFactors = FALSE,
              na.strings = "", check.names = FALSE)
d$row <- seq_len(nrow(d)) + 1  # spreadsheet row (header = 1)
r_prepost <- 0.5

one <- function(i, vtype) {
  x <- d[i, ]
  n1 <- x$n1; n2 <- x$n2
  if (x$comparison == "post_vs_pre") {
    # metafor SMCR: (m_post - m_pre) / sd_pre, needs r; group 1 = post, group 2 = pre
    e <- escalc("SMCR", m1i = x$mean1, m2i = x$mean2, sd1i = x$sd2, ni = n1, ri = r_prepost)
    return(c(route = "paired", yi = e$yi, vi = e$vi))
  }
  if (!is.na(x$mean1) && !is.na(x$sd1) && !is.na(x$mean2) && !is.na(x$sd2)) {
    e <- escalc("SMD", m1i = x$mean1, sd1i = x$sd1, n1i = n1, m2i = x$mean2, sd2i = x$sd2,
                n2i = n2, vtype = vtype)
    return(c(route = "means_sd", yi = e$yi, vi = e$vi))
  }
  if (!is.na(x$mean_diff) && !is.na(x$p_value)) {
    # two-sided p of a pooled t test -> |t|, signed by the mean difference (Cochrane 6.5.2.3)
    t <- sign(x$mean_diff) * qt(x$p_value / 2, n1 + n2 - 2, lower.tail = FALSE)
    e <- escalc("SMD", ti = t, n1i = n1, n2i = n2, vtype = vtype)
    return(c(route = "md_p", yi = e$yi, vi = e$vi))
  }
  if (!is.na(x$effect_size) && identical(x$effect_size_type, "t")) {
    t <- x$direction * abs(x$effect_size)
    e <- escalc("SMD", ti = t, n1i = n1, n2i = n2, vtype = vtype)
    return(c(route = "t", yi = e$yi, vi = e$vi))
  }
  if (!is.na(x$effect_size)) {
    e <- escalc("SMD", di = x$direction * abs(x$effect_size), n1i = n1, n2i = n2, vtype = vtype)
    return(c(route = "reported_es", yi = e$yi, vi = e$vi))
  }
  if (!is.na(x$p_value) && !is.na(x$direction)) {
    t <- x$direction * qt(x$p_value / 2, n1 + n2 - 2, lower.tail = FALSE)
    e <- escalc("SMD", ti = t, n1i = n1, n2i = n2, vtype = vtype)
    return(c(route = "p_only", yi = e$yi, vi = e$vi))
  }
  c(route = "none", yi = NA, vi = NA)
}

out <- list(metafor = as.character(packageVersion("metafor")), r = r_prepost, rows = list())
for (vtype in c("LS", "UB")) {
  res <- lapply(seq_len(nrow(d)), function(i) {
    v <- one(i, vtype)
    list(row = d$row[i], route = unname(v["route"]),
         yi = as.numeric(v["yi"]), vi = as.numeric(v["vi"]))
  })
  out$rows[[tolower(vtype)]] <- res
}
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, na = "null", pretty = TRUE),
           "tests/fixtures/study_effects_reference.json")
