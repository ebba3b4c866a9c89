//! The few distribution functions the forecasts need: the normal distribution and count
//! distributions (Poisson, negative binomial) for lead-time demand.

/// The standard normal cumulative distribution function.
pub fn normal_cdf(x: f64) -> f64 {
    0.5 * erfc(-x / std::f64::consts::SQRT_2)
}

/// The complementary error function (Numerical Recipes' Chebyshev fit, relative error < 1.2e-7).
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
    if x >= 0.0 { r } else { 2.0 - r }
}

/// The standard normal quantile function (Acklam's rational approximation, refined by one
/// Halley step). `p` outside (0, 1) gives an infinite value of the right sign.
pub fn normal_quantile(p: f64) -> f64 {
    if p <= 0.0 {
        return f64::NEG_INFINITY;
    }
    if p >= 1.0 {
        return f64::INFINITY;
    }
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    let x = if p < 0.024_25 {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - 0.024_25 {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    };
    // One Halley step against the cdf.
    let e = normal_cdf(x) - p;
    let u = e * (2.0 * std::f64::consts::PI).sqrt() * (x * x / 2.0).exp();
    x - u / (1.0 + x * u / 2.0)
}

/// `ln Γ(x)` for `x > 0` (Lanczos, g = 7, n = 9).
pub(crate) fn ln_gamma(x: f64) -> f64 {
    const G: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = G[0];
    let t = x + 7.5;
    for (i, g) in G.iter().enumerate().skip(1) {
        a += g / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// Beyond this many terms, sums of probabilities give way to the normal approximation.
const MAX_TERMS: f64 = 20_000.0;

/// A distribution of a non-negative count (demand over a lead time), matched to a mean and a
/// variance: Poisson when the variance does not exceed the mean, negative binomial otherwise.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CountDistribution {
    mean: f64,
    /// Negative-binomial size `r`; `None` means Poisson.
    size: Option<f64>,
}

impl CountDistribution {
    /// The distribution with this mean and variance (a mean below zero counts as zero).
    pub fn matching(mean: f64, variance: f64) -> Self {
        let mean = if mean.is_finite() { mean.max(0.0) } else { 0.0 };
        let size = (variance.is_finite() && variance > mean * (1.0 + 1e-9) && mean > 0.0)
            .then(|| mean * mean / (variance - mean));
        Self { mean, size }
    }

    /// The mean.
    pub fn mean(&self) -> f64 {
        self.mean
    }

    /// `ln P(X = k)`.
    fn ln_pmf(&self, k: f64) -> f64 {
        match self.size {
            None => k * self.mean.ln() - self.mean - ln_gamma(k + 1.0),
            Some(r) => {
                let p = r / (r + self.mean);
                ln_gamma(k + r) - ln_gamma(r) - ln_gamma(k + 1.0) + r * p.ln() + k * (1.0 - p).ln()
            }
        }
    }

    /// `P(X <= x)`.
    pub fn cdf(&self, x: f64) -> f64 {
        if x.is_nan() || x < 0.0 {
            return 0.0;
        }
        if self.mean == 0.0 {
            return 1.0;
        }
        let top = x.floor();
        let (start, end) = self.support();
        if top < start {
            return 0.0;
        }
        if top >= end {
            return 1.0;
        }
        if end - start > MAX_TERMS {
            // Too many terms to sum: the normal approximation, with continuity correction.
            return normal_cdf((top + 0.5 - self.mean) / self.sd());
        }
        let mut total = 0.0;
        let mut k = start;
        while k <= top {
            total += self.ln_pmf(k).exp();
            k += 1.0;
        }
        total.min(1.0)
    }

    /// The smallest count `q` with `P(X <= q) >= p`.
    pub fn quantile(&self, p: f64) -> f64 {
        if self.mean == 0.0 || p.is_nan() || p <= 0.0 {
            return 0.0;
        }
        let p = p.min(1.0 - 1e-12);
        let (start, end) = self.support();
        if end - start > MAX_TERMS {
            return (self.mean + normal_quantile(p) * self.sd() - 0.5)
                .ceil()
                .max(0.0);
        }
        let mut total = 0.0;
        let mut k = start;
        while k < end {
            total += self.ln_pmf(k).exp();
            if total >= p {
                return k;
            }
            k += 1.0;
        }
        end
    }

    /// The counts outside which the probability is negligible: 40 deviations either side.
    fn support(&self) -> (f64, f64) {
        let sd = self.sd();
        let start = (self.mean - 40.0 * sd - 40.0).floor().max(0.0);
        let end = (self.mean + 40.0 * sd + 40.0).ceil();
        (start, end)
    }

    fn sd(&self) -> f64 {
        match self.size {
            None => self.mean.sqrt(),
            Some(r) => (self.mean + self.mean * self.mean / r).sqrt(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_quantile_inverts_the_cdf() {
        for p in [0.001, 0.025, 0.3, 0.5, 0.9, 0.975, 0.999] {
            assert!((normal_cdf(normal_quantile(p)) - p).abs() < 1e-7, "{p}");
        }
        assert!((normal_quantile(0.975) - 1.959_964).abs() < 1e-5);
    }

    #[test]
    fn ln_gamma_matches_factorials() {
        assert!((ln_gamma(5.0) - 24f64.ln()).abs() < 1e-10);
        assert!((ln_gamma(0.5) - std::f64::consts::PI.sqrt().ln()).abs() < 1e-10);
    }

    #[test]
    fn poisson_cdf_matches_known_values() {
        let d = CountDistribution::matching(3.0, 3.0);
        // P(X <= 2) for Poisson(3) = 0.42319...
        assert!((d.cdf(2.0) - 0.423_190_081_126_844_3).abs() < 1e-9);
        assert_eq!(d.quantile(0.5), 3.0);
    }

    #[test]
    fn negative_binomial_has_the_matched_spread() {
        let d = CountDistribution::matching(10.0, 40.0);
        let mean: f64 = (0..400).map(|k| k as f64 * d.ln_pmf(k as f64).exp()).sum();
        let var: f64 = (0..400)
            .map(|k| (k as f64 - 10.0).powi(2) * d.ln_pmf(k as f64).exp())
            .sum();
        assert!((mean - 10.0).abs() < 1e-6 && (var - 40.0).abs() < 1e-4);
    }
}
