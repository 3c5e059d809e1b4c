//! The statistics of the report, as plain functions over `f64`: order statistics, the
//! Theil–Sen slope with Sen's confidence interval, and the Mann–Kendall trend test. Robust on
//! purpose: a weekly median of sync durations has Patch-Tuesday spikes and outages that a
//! least-squares line would follow.

/// The `p`-th percentile (0..=100) of `values`, interpolated linearly between the closest
/// ranks (NumPy's default, R's type 7); `None` when empty. NaNs are ignored.
pub fn percentile(values: &[f64], p: f64) -> Option<f64> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(f64::total_cmp);
    let rank = (p.clamp(0.0, 100.0) / 100.0) * (sorted.len() - 1) as f64;
    let (low, high) = (rank.floor() as usize, rank.ceil() as usize);
    Some(sorted[low] + (sorted[high] - sorted[low]) * (rank - low as f64))
}

pub fn median(values: &[f64]) -> Option<f64> {
    percentile(values, 50.0)
}

/// A robust straight line through points `(x, y)`: the median of the pairwise slopes, and the
/// interval that holds the true slope with 95 % confidence (Sen 1968, from the normal
/// approximation of Kendall's statistic).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TheilSen {
    pub slope: f64,
    pub intercept: f64,
    pub low: f64,
    pub high: f64,
}

/// z of the two-sided 95 % interval.
const Z_95: f64 = 1.959_963_984_540_054;

/// `None` with fewer than 3 points or when every `x` is the same.
pub fn theil_sen(points: &[(f64, f64)]) -> Option<TheilSen> {
    let n = points.len();
    if n < 3 {
        return None;
    }
    let mut slopes = Vec::with_capacity(n * (n - 1) / 2);
    for (i, &(xi, yi)) in points.iter().enumerate() {
        for &(xj, yj) in &points[i + 1..] {
            if xj != xi {
                slopes.push((yj - yi) / (xj - xi));
            }
        }
    }
    if slopes.is_empty() {
        return None;
    }
    slopes.sort_by(f64::total_cmp);
    let slope = median_of_sorted(&slopes);
    let xs: Vec<f64> = points.iter().map(|p| p.0).collect();
    let residuals: Vec<f64> = points.iter().map(|(x, y)| y - slope * x).collect();
    let intercept = median(&residuals).unwrap_or(0.0);
    // Kendall's variance, corrected for ties in x; the interval's ranks in the sorted slopes.
    let variance = (kendall_variance_term(n) - ties(&xs).map(kendall_variance_term).sum::<f64>()) / 18.0;
    let spread = Z_95 * variance.max(0.0).sqrt();
    let count = slopes.len() as f64;
    let last = slopes.len() - 1;
    let lower_rank = (((count - spread) / 2.0).round() as usize).saturating_sub(1).min(last);
    let upper_rank = (((count + spread) / 2.0).round() as usize).min(last);
    Some(TheilSen { slope, intercept, low: slopes[lower_rank], high: slopes[upper_rank] })
}

fn median_of_sorted(sorted: &[f64]) -> f64 {
    let mid = sorted.len() / 2;
    if sorted.len() % 2 == 1 {
        sorted[mid]
    } else {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    }
}

/// `n (n - 1) (2 n + 5)`, the term of Kendall's variance for `n` values (or a group of ties).
fn kendall_variance_term(n: usize) -> f64 {
    let n = n as f64;
    n * (n - 1.0) * (2.0 * n + 5.0)
}

/// Sizes of the groups of equal values (only groups of 2 or more matter).
fn ties(values: &[f64]) -> impl Iterator<Item = usize> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mut groups = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let j = sorted[i..].iter().take_while(|v| **v == sorted[i]).count();
        if j > 1 {
            groups.push(j);
        }
        i += j;
    }
    groups.into_iter()
}

/// The Mann–Kendall test for a monotonic trend of `ys` in their order.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MannKendall {
    /// Kendall's S: concordant minus discordant pairs.
    pub s: i64,
    pub z: f64,
    /// Two-sided p-value (normal approximation, continuity-corrected, ties accounted for).
    pub p: f64,
}

pub fn mann_kendall(ys: &[f64]) -> Option<MannKendall> {
    let n = ys.len();
    if n < 3 {
        return None;
    }
    let mut s = 0i64;
    for (i, yi) in ys.iter().enumerate() {
        for yj in &ys[i + 1..] {
            s += match yj.total_cmp(yi) {
                std::cmp::Ordering::Greater => 1,
                std::cmp::Ordering::Less => -1,
                std::cmp::Ordering::Equal => 0,
            };
        }
    }
    let variance = (kendall_variance_term(n) - ties(ys).map(kendall_variance_term).sum::<f64>()) / 18.0;
    if variance <= 0.0 {
        return Some(MannKendall { s, z: 0.0, p: 1.0 });
    }
    let z = match s {
        0 => 0.0,
        s if s > 0 => (s - 1) as f64 / variance.sqrt(),
        s => (s + 1) as f64 / variance.sqrt(),
    };
    Some(MannKendall { s, z, p: (2.0 * (1.0 - normal_cdf(z.abs()))).clamp(0.0, 1.0) })
}

/// Φ(x), the standard normal distribution function, from `erfc` (W. J. Cody's rational
/// approximations are overkill here: Numerical Recipes' `erfcc`, relative error < 1.2e-7).
pub fn normal_cdf(x: f64) -> f64 {
    0.5 * erfc(-x / std::f64::consts::SQRT_2)
}

fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * poly.exp();
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn percentiles_interpolate_between_ranks_like_numpy() {
        // numpy.percentile([1, 2, 3, 4], [0, 50, 95, 100]) == [1, 2.5, 3.85, 4]
        let v = [4.0, 1.0, 3.0, 2.0];
        assert_eq!(percentile(&v, 0.0), Some(1.0));
        assert_eq!(median(&v), Some(2.5));
        assert!((percentile(&v, 95.0).unwrap() - 3.85).abs() < 1e-12);
        assert_eq!(percentile(&v, 100.0), Some(4.0));
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[f64::NAN, 7.0]), Some(7.0));
    }

    #[test]
    fn the_normal_distribution_function_matches_its_table() {
        for (x, phi) in
            [(0.0, 0.5), (1.0, 0.841_344_746), (1.959_964, 0.975), (-2.575_829, 0.005), (3.0, 0.998_650_102)]
        {
            assert!((normal_cdf(x) - phi).abs() < 2e-7, "Φ({x}) = {} not {phi}", normal_cdf(x));
        }
    }

    #[test]
    fn theil_sen_ignores_an_outlier_that_least_squares_would_follow() {
        // y = 2x + 1, one wild point.
        let mut points: Vec<(f64, f64)> = (0..10).map(|x| (f64::from(x), 2.0 * f64::from(x) + 1.0)).collect();
        points[7].1 = 500.0;
        let fit = theil_sen(&points).unwrap();
        assert_eq!(fit.slope, 2.0);
        assert_eq!(fit.intercept, 1.0);
        assert!(fit.low <= 2.0 && 2.0 <= fit.high);
    }

    #[test]
    fn theil_sen_interval_matches_scipys_ranks() {
        // scipy.stats.theilslopes(y, x, 0.95) takes the slopes ranked round((N -+ z sigma) / 2)
        // (less one for the lower bound) of the N = 28 sorted pairwise slopes; sigma^2 =
        // 8 * 7 * 21 / 18, so ranks 5 and 22 (from 0): 0.5 and 4/3. The median of 28 slopes: 1.
        let ys = [1.0, 3.0, 2.0, 5.0, 4.0, 7.0, 6.0, 8.0];
        let points: Vec<(f64, f64)> = ys.iter().enumerate().map(|(x, y)| (x as f64, *y)).collect();
        let fit = theil_sen(&points).unwrap();
        assert_eq!(fit.slope, 1.0);
        assert_eq!(fit.low, 0.5, "{fit:?}");
        assert!((fit.high - 4.0 / 3.0).abs() < 1e-12, "{fit:?}");
    }

    #[test]
    fn mann_kendall_of_a_known_series() {
        // 1..=10 increasing: S = 45, Var = 10*9*25/18 = 125, z = 44/sqrt(125) = 3.9355,
        // p = 8.3e-5.
        let ys: Vec<f64> = (1..=10).map(f64::from).collect();
        let mk = mann_kendall(&ys).unwrap();
        assert_eq!(mk.s, 45);
        assert!((mk.z - 44.0 / 125f64.sqrt()).abs() < 1e-12);
        assert!(mk.p < 1e-4);
        let flat = mann_kendall(&[3.0; 9]).unwrap();
        assert_eq!((flat.s, flat.p), (0, 1.0));
    }

    proptest! {
        /// On an exact line the slope is exact and the interval collapses onto it; with any
        /// noise the interval still holds the slope it reports.
        #[test]
        fn theil_sen_recovers_a_line(slope in -50.0f64..50.0, intercept in -1e3f64..1e3, n in 3usize..40,
                                     noise in proptest::collection::vec(-1.0f64..1.0, 40)) {
            let exact: Vec<(f64, f64)> = (0..n).map(|x| (x as f64, slope * x as f64 + intercept)).collect();
            let fit = theil_sen(&exact).unwrap();
            prop_assert!((fit.slope - slope).abs() < 1e-9 * slope.abs().max(1.0));
            prop_assert!((fit.low - slope).abs() < 1e-9 * slope.abs().max(1.0));
            let noisy: Vec<(f64, f64)> = exact.iter().zip(&noise).map(|((x, y), e)| (*x, y + e)).collect();
            let fit = theil_sen(&noisy).unwrap();
            prop_assert!(fit.low <= fit.slope && fit.slope <= fit.high);
        }

        /// Reversing a series negates S and keeps p.
        #[test]
        fn mann_kendall_is_antisymmetric(ys in proptest::collection::vec(0.0f64..100.0, 3..40)) {
            let forward = mann_kendall(&ys).unwrap();
            let reversed: Vec<f64> = ys.iter().rev().copied().collect();
            let backward = mann_kendall(&reversed).unwrap();
            prop_assert_eq!(forward.s, -backward.s);
            prop_assert!((forward.p - backward.p).abs() < 1e-12);
        }
    }
}
