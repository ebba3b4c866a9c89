//! Metrics of binary classifiers and probability estimates, shared by every capability.
//!
//! All functions take scores (higher = more likely positive) and labels, check their input and
//! return a typed error instead of a meaningless number.
//!
//! ```
//! use saga_ai::metrics;
//! let scores = [0.9, 0.8, 0.3, 0.1];
//! let labels = [true, false, true, false];
//! assert_eq!(metrics::roc_auc(&scores, &labels).unwrap(), 0.75);
//! ```

use crate::error::{AiError, Result};

fn check(scores: &[f64], labels: &[bool]) -> Result<(usize, usize)> {
    if scores.len() != labels.len() {
        return Err(AiError::InvalidInput(format!(
            "{} scores but {} labels",
            scores.len(),
            labels.len()
        )));
    }
    if let Some(i) = scores.iter().position(|s| !s.is_finite()) {
        return Err(AiError::InvalidInput(format!(
            "score {i} is not a finite number"
        )));
    }
    let pos = labels.iter().filter(|&&l| l).count();
    let neg = labels.len() - pos;
    if pos == 0 || neg == 0 {
        return Err(AiError::NotEnoughData(format!(
            "need both classes, got {pos} positives and {neg} negatives"
        )));
    }
    Ok((pos, neg))
}

/// Indices sorted by score, highest first (ties in index order, for stable results).
fn by_score_desc(scores: &[f64]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    idx
}

/// Area under the ROC curve: the probability that a random positive scores above a random
/// negative (ties count one half).
pub fn roc_auc(scores: &[f64], labels: &[bool]) -> Result<f64> {
    let (pos, neg) = check(scores, labels)?;
    // Rank-sum (Mann-Whitney U) with average ranks for ties.
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let mut rank_sum_pos = 0.0;
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && scores[idx[j + 1]] == scores[idx[i]] {
            j += 1;
        }
        let avg_rank = (i + j) as f64 / 2.0 + 1.0;
        rank_sum_pos += idx[i..=j].iter().filter(|&&k| labels[k]).count() as f64 * avg_rank;
        i = j + 1;
    }
    let (p, n) = (pos as f64, neg as f64);
    Ok((rank_sum_pos - p * (p + 1.0) / 2.0) / (p * n))
}

/// Average precision (area under the precision-recall curve, step-wise, as scikit-learn
/// computes it): the mean of the precision at each positive's rank, tied scores taken together.
pub fn average_precision(scores: &[f64], labels: &[bool]) -> Result<f64> {
    let (pos, _) = check(scores, labels)?;
    let idx = by_score_desc(scores);
    let (mut tp, mut seen, mut ap) = (0usize, 0usize, 0.0);
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && scores[idx[j + 1]] == scores[idx[i]] {
            j += 1;
        }
        let new_tp = idx[i..=j].iter().filter(|&&k| labels[k]).count();
        tp += new_tp;
        seen += j - i + 1;
        ap += (new_tp as f64 / pos as f64) * (tp as f64 / seen as f64);
        i = j + 1;
    }
    Ok(ap)
}

/// The share of positives among the `k` highest scores.
pub fn precision_at_k(scores: &[f64], labels: &[bool], k: usize) -> Result<f64> {
    check(scores, labels)?;
    if k == 0 {
        return Err(AiError::InvalidInput("k must be at least 1".into()));
    }
    let idx = by_score_desc(scores);
    let k = k.min(idx.len());
    Ok(idx[..k].iter().filter(|&&i| labels[i]).count() as f64 / k as f64)
}

fn check_probabilities(probs: &[f64], labels: &[bool]) -> Result<()> {
    if probs.len() != labels.len() || probs.is_empty() {
        return Err(AiError::InvalidInput(format!(
            "{} probabilities and {} labels (need equal, non-zero counts)",
            probs.len(),
            labels.len()
        )));
    }
    if let Some(i) = probs.iter().position(|p| !(0.0..=1.0).contains(p)) {
        return Err(AiError::InvalidInput(format!(
            "probability {i} is {}, outside [0, 1]",
            probs[i]
        )));
    }
    Ok(())
}

/// Mean negative log-likelihood of the labels (natural log), probabilities clipped to
/// `[1e-15, 1 - 1e-15]`.
pub fn log_loss(probs: &[f64], labels: &[bool]) -> Result<f64> {
    check_probabilities(probs, labels)?;
    let sum: f64 = probs
        .iter()
        .zip(labels)
        .map(|(&p, &y)| {
            let p = p.clamp(1e-15, 1.0 - 1e-15);
            if y { -p.ln() } else { -(1.0 - p).ln() }
        })
        .sum();
    Ok(sum / probs.len() as f64)
}

/// Mean squared difference between probability and outcome.
pub fn brier(probs: &[f64], labels: &[bool]) -> Result<f64> {
    check_probabilities(probs, labels)?;
    let sum: f64 = probs
        .iter()
        .zip(labels)
        .map(|(&p, &y)| (p - if y { 1.0 } else { 0.0 }).powi(2))
        .sum();
    Ok(sum / probs.len() as f64)
}

/// Expected calibration error over `bins` equal-width probability bins: the mean, weighted by
/// bin size, of |mean predicted probability - observed rate|.
pub fn expected_calibration_error(probs: &[f64], labels: &[bool], bins: usize) -> Result<f64> {
    check_probabilities(probs, labels)?;
    if bins == 0 {
        return Err(AiError::InvalidInput("bins must be at least 1".into()));
    }
    let mut sum_p = vec![0.0; bins];
    let mut sum_y = vec![0.0; bins];
    let mut count = vec![0usize; bins];
    for (&p, &y) in probs.iter().zip(labels) {
        let b = ((p * bins as f64) as usize).min(bins - 1);
        sum_p[b] += p;
        sum_y[b] += if y { 1.0 } else { 0.0 };
        count[b] += 1;
    }
    let n = probs.len() as f64;
    Ok((0..bins)
        .filter(|&b| count[b] > 0)
        .map(|b| (count[b] as f64 / n) * ((sum_p[b] - sum_y[b]) / count[b] as f64).abs())
        .sum())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn perfect_and_reversed_rankings() {
        let labels = [true, true, false, false];
        assert_eq!(roc_auc(&[4.0, 3.0, 2.0, 1.0], &labels).unwrap(), 1.0);
        assert_eq!(roc_auc(&[1.0, 2.0, 3.0, 4.0], &labels).unwrap(), 0.0);
        assert_eq!(
            average_precision(&[4.0, 3.0, 2.0, 1.0], &labels).unwrap(),
            1.0
        );
        assert_eq!(
            precision_at_k(&[4.0, 3.0, 2.0, 1.0], &labels, 2).unwrap(),
            1.0
        );
    }

    #[test]
    fn average_precision_matches_a_hand_computation() {
        // ranks: P N P N -> precision at positives 1/1 and 2/3 -> AP = (1 + 2/3) / 2
        let ap = average_precision(&[0.9, 0.8, 0.7, 0.6], &[true, false, true, false]).unwrap();
        assert!((ap - (1.0 + 2.0 / 3.0) / 2.0).abs() < 1e-12);
    }

    #[test]
    fn ties_count_half() {
        assert_eq!(roc_auc(&[0.5, 0.5], &[true, false]).unwrap(), 0.5);
    }

    #[test]
    fn bad_input_is_a_typed_error() {
        assert!(matches!(
            roc_auc(&[0.1], &[true, false]),
            Err(AiError::InvalidInput(_))
        ));
        assert!(matches!(
            roc_auc(&[0.1, 0.2], &[true, true]),
            Err(AiError::NotEnoughData(_))
        ));
        assert!(matches!(
            roc_auc(&[f64::NAN, 0.2], &[true, false]),
            Err(AiError::InvalidInput(_))
        ));
        assert!(matches!(
            log_loss(&[1.5], &[true]),
            Err(AiError::InvalidInput(_))
        ));
        assert!(matches!(
            expected_calibration_error(&[0.5], &[true], 0),
            Err(AiError::InvalidInput(_))
        ));
    }

    #[test]
    fn calibration_of_a_calibrated_forecast_is_zero() {
        let probs = [0.25; 8];
        let labels = [true, false, false, false, true, false, false, false];
        assert!(expected_calibration_error(&probs, &labels, 10).unwrap() < 1e-12);
        assert!((brier(&[1.0, 0.0], &[true, false]).unwrap()).abs() < 1e-12);
    }

    /// O(n^2) definition of ROC-AUC, to check the rank-sum version.
    fn auc_pairs(scores: &[f64], labels: &[bool]) -> f64 {
        let (mut wins, mut pairs) = (0.0, 0.0);
        for (i, &li) in labels.iter().enumerate() {
            for (j, &lj) in labels.iter().enumerate() {
                if li && !lj {
                    pairs += 1.0;
                    if scores[i] > scores[j] {
                        wins += 1.0;
                    } else if scores[i] == scores[j] {
                        wins += 0.5;
                    }
                }
            }
        }
        wins / pairs
    }

    proptest! {
        #[test]
        fn auc_equals_the_pairwise_definition(data in prop::collection::vec((0u8..10, any::<bool>()), 2..60)) {
            let scores: Vec<f64> = data.iter().map(|d| d.0 as f64).collect();
            let labels: Vec<bool> = data.iter().map(|d| d.1).collect();
            prop_assume!(labels.iter().any(|&l| l) && labels.iter().any(|&l| !l));
            let fast = roc_auc(&scores, &labels).unwrap();
            prop_assert!((fast - auc_pairs(&scores, &labels)).abs() < 1e-9);
        }

        #[test]
        fn metrics_stay_in_range(data in prop::collection::vec((0.0f64..1.0, any::<bool>()), 2..60)) {
            let scores: Vec<f64> = data.iter().map(|d| d.0).collect();
            let labels: Vec<bool> = data.iter().map(|d| d.1).collect();
            prop_assume!(labels.iter().any(|&l| l) && labels.iter().any(|&l| !l));
            let ap = average_precision(&scores, &labels).unwrap();
            prop_assert!((0.0..=1.0 + 1e-12).contains(&ap));
            let ece = expected_calibration_error(&scores, &labels, 10).unwrap();
            prop_assert!((0.0..=1.0).contains(&ece));
        }
    }
}
