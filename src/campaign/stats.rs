//! Summaries and the dose-response regression: means with Student-t confidence intervals, and an
//! ordinary least-squares line with its R² and the p-value of its slope (`statrs` gives the t
//! distribution).

use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF as _, StudentsT};

/// A sample's summary.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Sample size.
    pub n: usize,
    /// Mean.
    pub mean: f64,
    /// Median.
    pub median: f64,
    /// Sample standard deviation (none below 2 values).
    pub sd: Option<f64>,
    /// The 95 % confidence interval of the mean (none below 2 values).
    pub ci95: Option<(f64, f64)>,
    /// Smallest.
    pub min: f64,
    /// Largest.
    pub max: f64,
}

/// Summarises `values` (none when empty).
pub fn summary(values: &[f64]) -> Option<Summary> {
    let n = values.len();
    if n == 0 {
        return None;
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    let median = super::detect::median(values)?;
    let (min, max) = values.iter().fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
    let (sd, ci95) = if n >= 2 {
        let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        let sd = var.sqrt();
        let t = StudentsT::new(0.0, 1.0, (n - 1) as f64).ok().map(|d| d.inverse_cdf(0.975));
        (Some(sd), t.map(|t| (mean - t * sd / (n as f64).sqrt(), mean + t * sd / (n as f64).sqrt())))
    } else {
        (None, None)
    };
    Some(Summary { n, mean, median, sd, ci95, min, max })
}

/// An ordinary least-squares line `y = intercept + slope × x`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Regression {
    /// Points.
    pub n: usize,
    /// Slope.
    pub slope: f64,
    /// Intercept.
    pub intercept: f64,
    /// Share of the variance the line explains (none when every y is the same: nothing to explain).
    pub r2: Option<f64>,
    /// Two-sided p-value of "the slope is 0" (t test, n − 2 degrees of freedom).
    pub p_value: f64,
}

impl std::fmt::Display for Regression {
    /// `slope 0.0326 s per unit, R² 0.042, p 0.005 (186 events)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let r2 = self.r2.map_or_else(|| "–".into(), |v| format!("{v:.3}"));
        write!(f, "slope {:.4} s per unit, R² {r2}, p {:.3} ({} events)", self.slope, self.p_value, self.n)
    }
}

/// The least-squares line through `(x, y)` (none below 3 points or without spread in x).
pub fn regression(points: &[(f64, f64)]) -> Option<Regression> {
    let n = points.len();
    if n < 3 {
        return None;
    }
    let nf = n as f64;
    let mx = points.iter().map(|p| p.0).sum::<f64>() / nf;
    let my = points.iter().map(|p| p.1).sum::<f64>() / nf;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let syy: f64 = points.iter().map(|p| (p.1 - my).powi(2)).sum();
    if sxx <= 0.0 {
        return None;
    }
    let slope = sxy / sxx;
    let intercept = my - slope * mx;
    let sse: f64 = points.iter().map(|p| (p.1 - intercept - slope * p.0).powi(2)).sum();
    let r2 = (syy > 0.0).then(|| 1.0 - sse / syy);
    let df = nf - 2.0;
    let se = (sse / df / sxx).sqrt();
    let p_value = if se > 0.0 {
        let t = (slope / se).abs();
        StudentsT::new(0.0, 1.0, df).map_or(f64::NAN, |d| 2.0 * (1.0 - d.cdf(t)))
    } else if slope == 0.0 {
        1.0
    } else {
        0.0
    };
    Some(Regression { n, slope, intercept, r2, p_value })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_and_intervals() {
        let s = summary(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]).unwrap();
        assert_eq!((s.n, s.mean, s.median, s.min, s.max), (8, 5.0, 4.5, 2.0, 9.0));
        assert!((s.sd.unwrap() - 2.138).abs() < 1e-3);
        // t(0.975, 7) = 2.3646: 5 ± 2.3646 × 2.138 / √8.
        let (lo, hi) = s.ci95.unwrap();
        assert!((lo - 3.2125).abs() < 1e-3 && (hi - 6.7875).abs() < 1e-3, "{lo} {hi}");
        assert_eq!(summary(&[3.0]).unwrap().ci95, None);
        assert!(summary(&[]).is_none());
    }

    #[test]
    fn regression_slope_fit_and_significance() {
        let line: Vec<(f64, f64)> = (0..10).map(|i| (i as f64, 1.0 + 2.0 * i as f64)).collect();
        let r = regression(&line).unwrap();
        assert_eq!((r.slope, r.intercept, r.r2, r.p_value), (2.0, 1.0, Some(1.0), 0.0));
        // Anscombe's first quartet: slope 0.5001, intercept 3.0001, R² 0.6665, p 0.00217.
        let x = [10.0, 8.0, 13.0, 9.0, 11.0, 14.0, 6.0, 4.0, 12.0, 7.0, 5.0];
        let y = [8.04, 6.95, 7.58, 8.81, 8.33, 9.96, 7.24, 4.26, 10.84, 4.82, 5.68];
        let r = regression(&x.iter().copied().zip(y).collect::<Vec<_>>()).unwrap();
        assert!((r.slope - 0.5001).abs() < 1e-3 && (r.intercept - 3.0001).abs() < 1e-3);
        assert!((r.r2.unwrap() - 0.6665).abs() < 1e-3 && (r.p_value - 0.00217).abs() < 1e-4, "{r:?}");
        let flat = regression(&[(0.0, 62.0), (1.0, 62.0), (2.0, 62.0)]).unwrap();
        assert_eq!((flat.slope, flat.r2, flat.p_value), (0.0, None, 1.0), "no spread in y: no effect, no R²");
        assert!(regression(&[(1.0, 1.0), (1.0, 2.0), (1.0, 3.0)]).is_none(), "no spread in x");
    }
}
