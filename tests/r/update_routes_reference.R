# Reference values for tests/test_update_routes.py: the routes for what newer studies report
# (meta.effects smd_from_md with ci/se, smd_from_d_ci, smd_change, smd_from_dz), computed with
# metafor escalc() where it has the measure, and the stated formula in R where it has none.
# Run from the repository root:  Rscript tests/r/update_routes_reference.R
# Writes tests/fixtures/update_routes_reference.json
suppressPackageStartupMessages({library(metafor); library(jsonlite)})

rev_j <- function(n1, n2) 1 - 3 / (4 * (n1 + n2) - 9)   # Deeks & Higgins 2010 (RevMan 5)
rev_vi <- function(g, n1, n2) (n1 + n2) / (n1 * n2) + g^2 / (2 * (n1 + n2 - 3.94))

# ---- mean difference with its CI or SE (Cochrane Handbook 6.5.2.3), between groups
# first case: neal2019 peak hip adduction (MD 4.9, 95% CI 1.4-8.2, n 20/20); others synthetic
md <- data.frame(md = c(4.9, -2.5, 0.3, 10), lo = c(1.4, -4.1, -1.9, 2), hi = c(8.2, -0.9, 2.5, 18),
                 n1 = c(20, 15, 40, 8), n2 = c(20, 17, 35, 9), level = c(0.95, 0.95, 0.90, 0.99))
md$se_ci <- (md$hi - md$lo) / (2 * qt(1 - (1 - md$level) / 2, md$n1 + md$n2 - 2))
md$se <- c(1.7, 0.8, 1.1, 4.0)
md_out <- list(input = md)
for (src in c("ci", "se")) {
  se <- if (src == "ci") md$se_ci else md$se
  ti <- md$md / se   # t = md / se; d = t sqrt(1/n1 + 1/n2) is md / SD with SD = se / sqrt(1/n1 + 1/n2)
  ls <- escalc("SMD", ti = ti, n1i = md$n1, n2i = md$n2, vtype = "LS")
  ub <- escalc("SMD", ti = ti, n1i = md$n1, n2i = md$n2, vtype = "UB")
  d <- ti * sqrt(1 / md$n1 + 1 / md$n2)
  g <- rev_j(md$n1, md$n2) * d
  md_out[[src]] <- list(ls = list(yi = as.numeric(ls$yi), vi = as.numeric(ls$vi)),
                        ub = list(yi = as.numeric(ub$yi), vi = as.numeric(ub$vi)),
                        revman = list(yi = g, vi = rev_vi(g, md$n1, md$n2)))
}

# ---- reported d (or g) with its CI: se = (hi - lo) / (2 qnorm((1 + level)/2)), vi = J^2 se^2
dc <- data.frame(d = c(0.91, -0.45, 1.20, 0.05), n1 = c(20, 12, 30, 50), n2 = c(20, 14, 25, 48),
                 level = c(0.95, 0.95, 0.90, 0.95))
# CIs built as the source would: d -/+ z sqrt(1/n1 + 1/n2 + d^2 / (2 N)) (Borenstein 2009, eq. 4.20)
vd <- 1 / dc$n1 + 1 / dc$n2 + dc$d^2 / (2 * (dc$n1 + dc$n2))
z <- qnorm((1 + dc$level) / 2)
dc$lo <- dc$d - z * sqrt(vd); dc$hi <- dc$d + z * sqrt(vd)
se <- (dc$hi - dc$lo) / (2 * z)
e_ls <- escalc("SMD", di = dc$d, n1i = dc$n1, n2i = dc$n2, vtype = "LS")
j_ls <- as.numeric(e_ls$yi) / dc$d          # metafor's exact J (.cmicalc)
j_rev <- rev_j(dc$n1, dc$n2)
dci_out <- list(input = dc,
                ls = list(yi = j_ls * dc$d, vi = (j_ls * se)^2),
                revman = list(yi = j_rev * dc$d, vi = (j_rev * se)^2),
                g = list(yi = dc$d, vi = se^2),
                escalc_d_with_n = list(yi = as.numeric(e_ls$yi), vi = as.numeric(e_ls$vi)))

# ---- within-group mean change with its CI or SE -> d_z (metafor SMCC, vtype LS)
# first three: bramah2019 (n 12) pelvic drop, hip adduction, knee flexion, post minus pre
# (printed as reductions 3.12 [1.88, 4.37], 3.99 [2.01, 5.96], 4.09 [0.04, 8.15]); others synthetic
ch <- data.frame(md = c(-3.12, -3.99, -4.09, 1.5, -0.4), lo = c(-4.37, -5.96, -8.15, 0.2, -1.6),
                 hi = c(-1.88, -2.01, -0.04, 2.8, 0.8), n = c(12, 12, 12, 25, 9),
                 level = c(0.95, 0.95, 0.95, 0.90, 0.95), se = c(0.6, 0.9, 1.8, 0.7, 0.55))
ch_out <- list(input = ch)
for (src in c("ci", "se")) {
  se <- if (src == "ci") (ch$hi - ch$lo) / (2 * qt((1 + ch$level) / 2, ch$n - 1)) else ch$se
  sdc <- se * sqrt(ch$n)
  e <- escalc("SMCC", m1i = ch$md, m2i = 0 * ch$md, sd1i = sdc, sd2i = 0 * sdc, ri = 0 * sdc,
              ni = ch$n, vtype = "LS")
  ch_out[[src]] <- list(yi = as.numeric(e$yi), vi = as.numeric(e$vi), sd_change = sdc)
}

# ---- a reported d_z with n (metafor SMCC with sd_change = 1)
dz <- data.frame(dz = c(-1.7, -2.0, -0.78, 0.4), n = c(11, 11, 11, 30))
e <- escalc("SMCC", m1i = dz$dz, m2i = 0 * dz$dz, sd1i = 1 + 0 * dz$dz, sd2i = 0 * dz$dz,
            ri = 0 * dz$dz, ni = dz$n, vtype = "LS")
dz_out <- list(input = dz, yi = as.numeric(e$yi), vi = as.numeric(e$vi))

out <- list(generated_by = "tests/r/update_routes_reference.R",
            metafor_version = as.character(packageVersion("metafor")),
            md = md_out, d_ci = dci_out, change = ch_out, dz = dz_out)
writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE, dataframe = "columns"),
           "tests/fixtures/update_routes_reference.json")
