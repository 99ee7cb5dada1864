# Reference values for tests/test_vecmath.py: R's own exp(), pnorm() and
# pchisq() on dense grids, for the branch-free special functions of
# meta/_vecmath.py and the chi-square tail of the compiled pool_many kernel
# (meta/_fast.py).
#   Rscript tests/r/vecmath_reference.R   (from the repository root)
# writes tests/fixtures/vecmath_reference.json (17 significant digits: every
# double round-trips exactly).
#
# The grids are dyadic (j / 2^e), so tests/test_vecmath.py rebuilds the same
# arguments bit for bit with numpy and only the results are stored; the
# arguments next to the range boundaries are stored as well.
g17 <- function(x) sprintf("%.17g", x)
arr <- function(x) paste0("[", paste(g17(x), collapse = ","), "]")

# 2 pnorm(-z): z = j/256, j = 0 .. 38*256 (p is 0 from z = 37.5193 on, in R)
z_grid <- (0:(38 * 256)) / 256
edges <- c(0.67448975, sqrt(32), 37.5193)
z_edge <- c(1e-300, 2^-60, 2^-53, 1e-8, 0.1, as.vector(outer(edges, 1 + (-3:3) * 2^-52)))
z_rand <- local({ set.seed(20160601); sort(runif(2000, 0, 38)) })

# exp(-x): x = j/8 (0 .. 746), x = 708 + j/64 (708 .. 745.25, results near and
# in the subnormal range), x = j/10 for j = 0, 7, 14, ... (<= 746)
x_grid <- (0:(746 * 8)) / 8
x_sub <- 708 + (0:(37.25 * 64)) / 64
x_dec <- seq(0, 7460, by = 7) / 10
x_rand <- local({ set.seed(19690601); c(sort(runif(1000, 0, 5)), sort(runif(1000, 0, 746))) })

# pchisq(q, df, lower.tail = FALSE): df = 1 .. 30, q = m 2^e with
# m = 1, 1.125, ..., 1.875 and e = -27 .. 10, q <= 1500 (1.1e-8 .. 1440);
# plus q at the range boundaries of erfc(sqrt(q/2)) (q/2 = 0.46875^2, q = 32)
q_grid <- sort(as.vector(outer(1 + (0:7) / 8, 2^(-27:10))))
q_grid <- q_grid[q_grid <= 1500]
q_edge <- c(as.vector(outer(c(2 * 0.46875^2, 32), 1 + (-3:3) * 2^-52)), 1e-300, 5e-324)
chisq <- function(q) sapply(1:30, function(df) pchisq(q, df, lower.tail = FALSE))

json <- paste0(
  "{\n",
  "\"R\": \"", R.version.string, "\",\n",
  "\"pnorm2_grid\": ", arr(2 * pnorm(-z_grid)), ",\n",
  "\"pnorm2_edge_z\": ", arr(z_edge), ",\n",
  "\"pnorm2_edge\": ", arr(2 * pnorm(-z_edge)), ",\n",
  "\"pnorm2_rand_z\": ", arr(z_rand), ",\n",
  "\"pnorm2_rand\": ", arr(2 * pnorm(-z_rand)), ",\n",
  "\"exp_grid\": ", arr(exp(-x_grid)), ",\n",
  "\"exp_sub\": ", arr(exp(-x_sub)), ",\n",
  "\"exp_dec\": ", arr(exp(-x_dec)), ",\n",
  "\"exp_rand_x\": ", arr(x_rand), ",\n",
  "\"exp_rand\": ", arr(exp(-x_rand)), ",\n",
  "\"chisq_q\": ", arr(q_grid), ",\n",
  "\"chisq\": [", paste(apply(chisq(q_grid), 2, arr), collapse = ",\n"), "],\n",
  "\"chisq_edge_q\": ", arr(q_edge), ",\n",
  "\"chisq_edge\": [", paste(apply(chisq(q_edge), 2, arr), collapse = ",\n"), "]\n",
  "}\n")
writeLines(json, "tests/fixtures/vecmath_reference.json", sep = "")
cat("wrote tests/fixtures/vecmath_reference.json\n")
