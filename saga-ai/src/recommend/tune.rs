//! Hyperparameter selection on the validation fold: every candidate is fitted on the validation
//! training histories and scored on the second-to-last items; the best NDCG@k wins (the first
//! one on ties). The test items are never looked at here.

use crate::error::{AiError, Result};
use crate::recommend::ease::Ease;
use crate::recommend::evaluate::evaluate;
use crate::recommend::interactions::Interactions;
use crate::recommend::item_knn::ItemKnn;
use crate::recommend::metrics::{RankingAccumulator, RankingSummary};
use crate::recommend::popularity::Popularity;
use crate::recommend::scorer::{ItemScorer, top_k};
use crate::recommend::sequential::{SequentialParams, blend, transition_scores};
use crate::recommend::transitions::Transitions;

/// Reports progress: `(steps done, steps in all)`.
pub type Progress<'a> = &'a mut dyn FnMut(usize, usize);

/// The chosen setting and its validation score.
#[derive(Debug, Clone, PartialEq)]
pub struct Tuned<P> {
    /// The setting with the best validation NDCG.
    pub params: P,
    /// Its validation metrics.
    pub valid: RankingSummary,
    /// How many settings were tried.
    pub tried: usize,
}

fn pick<P: Clone>(
    candidates: &[P],
    mut eval: impl FnMut(&P) -> Result<RankingSummary>,
) -> Result<Tuned<P>> {
    let mut best: Option<(P, RankingSummary)> = None;
    for p in candidates {
        let s = eval(p)?;
        if best.as_ref().is_none_or(|(_, b)| s.ndcg > b.ndcg) {
            best = Some((p.clone(), s));
        }
    }
    let (params, valid) =
        best.ok_or_else(|| AiError::InvalidInput("empty hyperparameter grid".into()))?;
    Ok(Tuned {
        params,
        valid,
        tried: candidates.len(),
    })
}

/// Picks item-kNN's neighbourhood size.
pub fn tune_item_knn(
    data: &Interactions,
    targets: &[(String, String)],
    k: usize,
    grid: &[Option<usize>],
    progress: Progress<'_>,
) -> Result<Tuned<Option<usize>>> {
    let mut done = 0;
    pick(grid, |&n| {
        let s = evaluate(data, &ItemKnn::new(n), targets, k);
        done += 1;
        progress(done, grid.len());
        s
    })
}

/// Picks EASE's lambda.
pub fn tune_ease(
    data: &Interactions,
    targets: &[(String, String)],
    k: usize,
    lambdas: &[f64],
    progress: Progress<'_>,
) -> Result<Tuned<f64>> {
    let mut done = 0;
    pick(lambdas, |&l| {
        let s = evaluate(data, &Ease::fit(data, l)?, targets, k);
        done += 1;
        progress(done, lambdas.len());
        s
    })
}

/// The settings [`tune_sequential`] tries: every combination.
#[derive(Debug, Clone, PartialEq)]
pub struct SequentialGrid {
    /// EASE lambdas.
    pub lambdas: Vec<f64>,
    /// Succession gap windows.
    pub gap_windows: Vec<usize>,
    /// Succession gap decays.
    pub gap_decays: Vec<f64>,
    /// Numbers of recent items.
    pub recents: Vec<usize>,
    /// Recency decays.
    pub recency_decays: Vec<f64>,
    /// Blend weights of the transition part.
    pub alphas: Vec<f64>,
}

impl SequentialGrid {
    /// Settings tried in all.
    pub fn len(&self) -> usize {
        self.lambdas.len()
            * self.gap_windows.len()
            * self.gap_decays.len()
            * self.recents.len()
            * self.recency_decays.len()
            * self.alphas.len()
    }

    /// Whether no setting would be tried.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Default for SequentialGrid {
    /// The grid the MovieLens evaluation uses.
    fn default() -> Self {
        Self {
            lambdas: vec![200.0, 400.0, 800.0],
            gap_windows: vec![1, 3, 5, 10],
            gap_decays: vec![0.5, 0.8, 1.0],
            recents: vec![1, 3, 5, 10],
            recency_decays: vec![0.5, 0.8, 0.95],
            alphas: (0..=10).map(|a| f64::from(a) / 10.0).collect(),
        }
    }
}

/// Picks every setting of [`SequentialEase`](super::SequentialEase). EASE is fitted once per
/// lambda and transitions once per gap setting; the blend weights are tried on cached parts.
pub fn tune_sequential(
    data: &Interactions,
    targets: &[(String, String)],
    k: usize,
    grid: &SequentialGrid,
    progress: Progress<'_>,
) -> Result<Tuned<SequentialParams>> {
    if grid.is_empty() {
        return Err(AiError::InvalidInput("empty hyperparameter grid".into()));
    }
    let n = data.n_items();
    let customers: Vec<Option<u32>> = targets
        .iter()
        .map(|(c, _)| data.customer_index(c))
        .collect();
    let steps = grid.len() / grid.alphas.len().max(1);
    let mut done = 0;
    let mut best: Option<(SequentialParams, RankingSummary)> = None;
    let mut pop_scores = vec![0.0; n];
    Popularity.score(data, &[], &mut pop_scores);

    for &lambda in &grid.lambdas {
        let ease = Ease::fit(data, lambda)?;
        // Per target customer: EASE scores and seen items (None: cold start).
        let cached: Vec<Option<(Vec<f64>, Vec<bool>)>> = customers
            .iter()
            .map(|c| {
                let h = c.map_or(&[][..], |c| data.history(c));
                if h.is_empty() {
                    return None;
                }
                let mut e = vec![0.0; n];
                ease.score(data, h, &mut e);
                let mut seen = vec![false; n];
                for &i in h {
                    seen[i as usize] = true;
                }
                Some((e, seen))
            })
            .collect();
        for &gap_window in &grid.gap_windows {
            for &gap_decay in &grid.gap_decays {
                let trans = Transitions::fit(data, gap_window, gap_decay)?;
                for &recent in &grid.recents {
                    for &recency_decay in &grid.recency_decays {
                        let mut accs = grid
                            .alphas
                            .iter()
                            .map(|_| RankingAccumulator::new(k))
                            .collect::<Result<Vec<_>>>()?;
                        let mut t = vec![0.0; n];
                        let mut out = vec![0.0; n];
                        let none = vec![false; n];
                        for ((cust, (_, item)), cache) in customers.iter().zip(targets).zip(&cached)
                        {
                            let target = data.item_index(item).unwrap_or(u32::MAX);
                            match (cust, cache) {
                                (Some(c), Some((e, seen))) => {
                                    t.iter_mut().for_each(|x| *x = 0.0);
                                    transition_scores(
                                        &trans,
                                        data.history(*c),
                                        recent,
                                        recency_decay,
                                        &mut t,
                                    );
                                    for (acc, &alpha) in accs.iter_mut().zip(&grid.alphas) {
                                        blend(alpha, e, &t, seen, &mut out);
                                        let r = ids(top_k(&out, data.popularity(), seen, k));
                                        acc.add(&r, &target);
                                    }
                                }
                                _ => {
                                    let r = ids(top_k(&pop_scores, data.popularity(), &none, k));
                                    for acc in &mut accs {
                                        acc.add(&r, &target);
                                    }
                                }
                            }
                        }
                        for (acc, &alpha) in accs.iter().zip(&grid.alphas) {
                            let s = acc.summary()?;
                            if best.as_ref().is_none_or(|(_, b)| s.ndcg > b.ndcg) {
                                let params = SequentialParams {
                                    lambda,
                                    gap_window,
                                    gap_decay,
                                    recent,
                                    recency_decay,
                                    alpha,
                                };
                                best = Some((params, s));
                            }
                        }
                        done += 1;
                        progress(done, steps);
                    }
                }
            }
        }
    }
    let (params, valid) =
        best.ok_or_else(|| AiError::InvalidInput("empty hyperparameter grid".into()))?;
    params.validate()?;
    Ok(Tuned {
        params,
        valid,
        tried: grid.len(),
    })
}

fn ids(r: Vec<(u32, f64)>) -> Vec<u32> {
    r.into_iter().map(|(i, _)| i).collect()
}
