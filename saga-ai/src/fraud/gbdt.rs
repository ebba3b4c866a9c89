//! A compact histogram gradient-boosting classifier (log-loss), written for this crate.
//!
//! Each feature is cut into at most `max_bins` quantile bins once; each tree is grown depth by
//! depth from per-bin sums of gradients and hessians (second-order, as XGBoost and LightGBM do),
//! with L2 regularisation on leaf values, a minimum hessian per child, shrinkage and row
//! subsampling. The model outputs a probability (the logistic of the summed leaf values) and can
//! explain each prediction exactly: every internal node keeps the value a leaf there would
//! have, so the raw score is the base score plus, for every split along the paths taken, the
//! change of node value, credited to the split's feature (the "Saabas" path attribution).
//! Why our own rather than a crate: docs/decisions/0007-gradient-boosting.md.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use super::scorer::sigmoid;
use crate::error::{AiError, Result};

/// Training settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GbdtParams {
    /// Number of trees.
    pub n_trees: usize,
    /// Depth limit of each tree (1 = stumps).
    pub max_depth: usize,
    /// Shrinkage applied to every leaf value.
    pub learning_rate: f64,
    /// Share of rows each tree sees, drawn afresh per tree, in (0, 1].
    pub subsample: f64,
    /// Minimum sum of hessians (about `p(1-p)` per row) in a child.
    pub min_child_weight: f64,
    /// L2 penalty on leaf values.
    pub lambda: f64,
    /// Bins per feature, 2..=256.
    pub max_bins: usize,
    /// Seed of the subsampling.
    pub seed: u64,
}

impl Default for GbdtParams {
    /// 300 trees of depth 5, learning rate 0.05, 80% rows, min child weight 1, lambda 1,
    /// 64 bins.
    fn default() -> Self {
        Self {
            n_trees: 300,
            max_depth: 5,
            learning_rate: 0.05,
            subsample: 0.8,
            min_child_weight: 1.0,
            lambda: 1.0,
            max_bins: 64,
            seed: 0,
        }
    }
}

impl GbdtParams {
    fn validate(&self) -> Result<()> {
        let ok = self.n_trees >= 1
            && (1..=16).contains(&self.max_depth)
            && self.learning_rate.is_finite()
            && self.learning_rate > 0.0
            && self.subsample > 0.0
            && self.subsample <= 1.0
            && self.min_child_weight.is_finite()
            && self.min_child_weight >= 0.0
            && self.lambda.is_finite()
            && self.lambda >= 0.0
            && (2..=256).contains(&self.max_bins);
        if ok {
            Ok(())
        } else {
            Err(AiError::InvalidInput(format!(
                "invalid boosting parameters: {self:?}"
            )))
        }
    }
}

/// A tree node; `left == 0` marks a leaf (the root is node 0, so no child is 0).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Node {
    feature: u32,
    threshold: f64,
    left: u32,
    right: u32,
    /// The split's bin (training only: rows with bin <= this go left).
    #[serde(skip)]
    bin: u8,
    /// The (shrunk) value a leaf here would have: the prediction of a leaf, the reference of
    /// the path attribution for an internal node.
    value: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Tree {
    nodes: Vec<Node>,
}

/// A fitted gradient-boosting classifier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gbdt {
    n_features: usize,
    base_score: f64,
    trees: Vec<Tree>,
    params: GbdtParams,
}

/// Per-bin sums of gradient and hessian.
#[derive(Debug, Clone, Copy, Default)]
struct Bin {
    g: f64,
    h: f64,
}

struct Binned {
    /// Column-major bin indices.
    cols: Vec<Vec<u8>>,
    /// Upper edges: bin `b` of feature `f` holds values `<= cuts[f][b]` (and above the
    /// previous cut); the last bin is open above.
    cuts: Vec<Vec<f64>>,
}

fn bin_features(x: &[Vec<f64>], n_features: usize, max_bins: usize) -> Binned {
    let mut cols = Vec::with_capacity(n_features);
    let mut cuts = Vec::with_capacity(n_features);
    let step = (x.len() / 100_000).max(1);
    for f in 0..n_features {
        let mut sample: Vec<f64> = x.iter().step_by(step).map(|r| r[f]).collect();
        sample.sort_by(f64::total_cmp);
        sample.dedup();
        let c: Vec<f64> = if sample.len() <= max_bins {
            sample[..sample.len().saturating_sub(1)].to_vec()
        } else {
            let mut c: Vec<f64> = (1..max_bins)
                .map(|k| sample[k * sample.len() / max_bins])
                .collect();
            c.dedup();
            c
        };
        cols.push(x.iter().map(|r| bin_of(&c, r[f])).collect());
        cuts.push(c);
    }
    Binned { cols, cuts }
}

fn bin_of(cuts: &[f64], v: f64) -> u8 {
    cuts.partition_point(|&c| c < v) as u8
}

struct Grower<'a> {
    binned: &'a Binned,
    grad: &'a [f64],
    hess: &'a [f64],
    params: &'a GbdtParams,
    nodes: Vec<Node>,
}

impl Grower<'_> {
    fn leaf_value(&self, g: f64, h: f64) -> f64 {
        -g / (h + self.params.lambda) * self.params.learning_rate
    }

    fn grow(&mut self, rows: Vec<u32>, depth: usize) -> u32 {
        let (g, h) = rows.iter().fold((0.0, 0.0), |(g, h), &i| {
            (g + self.grad[i as usize], h + self.hess[i as usize])
        });
        let id = self.nodes.len() as u32;
        self.nodes.push(Node {
            feature: 0,
            threshold: 0.0,
            left: 0,
            right: 0,
            bin: 0,
            value: self.leaf_value(g, h),
        });
        if depth >= self.params.max_depth || h < 2.0 * self.params.min_child_weight {
            return id;
        }
        let Some((feature, bin)) = self.best_split(&rows, g, h) else {
            return id;
        };
        let col = &self.binned.cols[feature];
        let (left, right): (Vec<u32>, Vec<u32>) =
            rows.into_iter().partition(|&i| col[i as usize] <= bin);
        let l = self.grow(left, depth + 1);
        let r = self.grow(right, depth + 1);
        let node = &mut self.nodes[id as usize];
        node.feature = feature as u32;
        node.threshold = self.binned.cuts[feature][bin as usize];
        node.left = l;
        node.right = r;
        node.bin = bin;
        id
    }

    fn best_split(&self, rows: &[u32], g: f64, h: f64) -> Option<(usize, u8)> {
        let lambda = self.params.lambda;
        let parent = g * g / (h + lambda);
        let mut best: Option<(f64, usize, u8)> = None;
        let mut hist = vec![Bin::default(); 256];
        for (f, col) in self.binned.cols.iter().enumerate() {
            let n_bins = self.binned.cuts[f].len() + 1;
            if n_bins < 2 {
                continue;
            }
            hist[..n_bins].fill(Bin::default());
            for &i in rows {
                let b = &mut hist[col[i as usize] as usize];
                b.g += self.grad[i as usize];
                b.h += self.hess[i as usize];
            }
            let (mut gl, mut hl) = (0.0, 0.0);
            for (b, bin) in hist[..n_bins - 1].iter().enumerate() {
                gl += bin.g;
                hl += bin.h;
                let (gr, hr) = (g - gl, h - hl);
                if hl < self.params.min_child_weight || hr < self.params.min_child_weight {
                    continue;
                }
                let gain = gl * gl / (hl + lambda) + gr * gr / (hr + lambda) - parent;
                if gain > 1e-9 && best.is_none_or(|(bg, _, _)| gain > bg) {
                    best = Some((gain, f, b as u8));
                }
            }
        }
        best.map(|(_, f, b)| (f, b))
    }
}

impl Tree {
    fn leaf(&self, row: &[f64]) -> f64 {
        let mut n = &self.nodes[0];
        while n.left != 0 {
            let next = if row[n.feature as usize] <= n.threshold {
                n.left
            } else {
                n.right
            };
            n = &self.nodes[next as usize];
        }
        n.value
    }
}

fn check_rows(x: &[Vec<f64>], n_features: usize) -> Result<()> {
    for (i, r) in x.iter().enumerate() {
        if r.len() != n_features {
            return Err(AiError::InvalidInput(format!(
                "row {i} has {} features, expected {n_features}",
                r.len()
            )));
        }
        if let Some(f) = r.iter().position(|v| !v.is_finite()) {
            return Err(AiError::InvalidInput(format!(
                "row {i}, feature {f} is {}",
                r[f]
            )));
        }
    }
    Ok(())
}

impl Gbdt {
    /// Fits on rows `x` (all of one length, finite) and labels `y`. Needs both classes.
    /// `progress` is called after each tree with (trees done, trees total).
    pub fn fit(
        x: &[Vec<f64>],
        y: &[bool],
        params: &GbdtParams,
        mut progress: impl FnMut(usize, usize),
    ) -> Result<Self> {
        params.validate()?;
        if x.len() != y.len() {
            return Err(AiError::InvalidInput(format!(
                "{} rows but {} labels",
                x.len(),
                y.len()
            )));
        }
        let n_features = x.first().map_or(0, Vec::len);
        if n_features == 0 {
            return Err(AiError::NotEnoughData("no rows or no features".into()));
        }
        check_rows(x, n_features)?;
        let pos = y.iter().filter(|&&l| l).count();
        if pos == 0 || pos == y.len() {
            return Err(AiError::NotEnoughData(format!(
                "need both classes, got {pos} positives among {} rows",
                y.len()
            )));
        }
        let rate = pos as f64 / y.len() as f64;
        let base_score = (rate / (1.0 - rate)).ln();
        let binned = bin_features(x, n_features, params.max_bins);
        let mut raw = vec![base_score; x.len()];
        let mut grad = vec![0.0; x.len()];
        let mut hess = vec![0.0; x.len()];
        let mut rng = StdRng::seed_from_u64(params.seed);
        let mut trees = Vec::with_capacity(params.n_trees);
        for t in 0..params.n_trees {
            for i in 0..x.len() {
                let p = sigmoid(raw[i]);
                grad[i] = p - if y[i] { 1.0 } else { 0.0 };
                hess[i] = (p * (1.0 - p)).max(1e-12);
            }
            let rows: Vec<u32> = (0..x.len() as u32)
                .filter(|_| params.subsample >= 1.0 || rng.random_bool(params.subsample))
                .collect();
            let mut grower = Grower {
                binned: &binned,
                grad: &grad,
                hess: &hess,
                params,
                nodes: Vec::new(),
            };
            grower.grow(rows, 0);
            let tree = Tree {
                nodes: grower.nodes,
            };
            for (i, r) in raw.iter_mut().enumerate() {
                *r += tree.leaf_binned(&binned, i);
            }
            trees.push(tree);
            progress(t + 1, params.n_trees);
        }
        Ok(Self {
            n_features,
            base_score,
            trees,
            params: params.clone(),
        })
    }

    /// The number of features it expects.
    pub fn n_features(&self) -> usize {
        self.n_features
    }

    /// The number of trees.
    pub fn n_trees(&self) -> usize {
        self.trees.len()
    }

    /// The settings it was trained with.
    pub fn params(&self) -> &GbdtParams {
        &self.params
    }

    /// Keeps only the first `n` trees (a model with fewer boosting rounds).
    pub fn truncate(&mut self, n: usize) {
        self.trees.truncate(n.max(1));
        self.params.n_trees = self.trees.len();
    }

    fn check(&self, row: &[f64]) -> Result<()> {
        check_rows(std::slice::from_ref(&row.to_vec()), self.n_features)
    }

    /// The raw score (log-odds) of a row.
    pub fn raw(&self, row: &[f64]) -> Result<f64> {
        if row.len() != self.n_features || row.iter().any(|v| !v.is_finite()) {
            self.check(row)?;
        }
        Ok(self.base_score + self.trees.iter().map(|t| t.leaf(row)).sum::<f64>())
    }

    /// The probability of the positive class.
    pub fn predict_proba(&self, row: &[f64]) -> Result<f64> {
        Ok(sigmoid(self.raw(row)?))
    }

    /// Per-feature contributions (log-odds) and the bias; `bias + sum(contributions)` equals
    /// [`Gbdt::raw`].
    pub fn contributions(&self, row: &[f64]) -> Result<(f64, Vec<f64>)> {
        self.raw(row)?;
        let mut contrib = vec![0.0; self.n_features];
        let mut bias = self.base_score;
        for t in &self.trees {
            let mut n = &t.nodes[0];
            bias += n.value;
            while n.left != 0 {
                let next = if row[n.feature as usize] <= n.threshold {
                    n.left
                } else {
                    n.right
                };
                let child = &t.nodes[next as usize];
                contrib[n.feature as usize] += child.value - n.value;
                n = child;
            }
        }
        Ok((bias, contrib))
    }

    /// Total split gain proxy per feature: how often each feature is split on (a simple
    /// importance for the docs).
    pub fn split_counts(&self) -> Vec<usize> {
        let mut c = vec![0; self.n_features];
        for t in &self.trees {
            for n in &t.nodes {
                if n.left != 0 {
                    c[n.feature as usize] += 1;
                }
            }
        }
        c
    }
}

impl Tree {
    fn leaf_binned(&self, binned: &Binned, i: usize) -> f64 {
        let mut n = &self.nodes[0];
        while n.left != 0 {
            // bin <= b  <=>  value <= cuts[b] == threshold
            let go_left = binned.cols[n.feature as usize][i] <= n.bin;
            n = &self.nodes[if go_left { n.left } else { n.right } as usize];
        }
        n.value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toy(n: usize) -> (Vec<Vec<f64>>, Vec<bool>) {
        let mut rng = StdRng::seed_from_u64(3);
        let mut x = Vec::new();
        let mut y = Vec::new();
        for _ in 0..n {
            let a: f64 = rng.random_range(0.0..1.0);
            let b: f64 = rng.random_range(0.0..1.0);
            x.push(vec![a, b, rng.random_range(0.0..1.0)]);
            y.push((a > 0.7 && b > 0.5) ^ rng.random_bool(0.05));
        }
        (x, y)
    }

    #[test]
    fn learns_an_interaction() {
        let (x, y) = toy(2000);
        let p = GbdtParams {
            n_trees: 40,
            max_depth: 3,
            learning_rate: 0.3,
            ..GbdtParams::default()
        };
        let m = Gbdt::fit(&x, &y, &p, |_, _| {}).unwrap();
        let scores: Vec<f64> = x.iter().map(|r| m.predict_proba(r).unwrap()).collect();
        assert!(crate::metrics::roc_auc(&scores, &y).unwrap() > 0.9);
    }

    #[test]
    fn contributions_add_up_to_the_raw_score() {
        let (x, y) = toy(500);
        let m = Gbdt::fit(
            &x,
            &y,
            &GbdtParams {
                n_trees: 10,
                ..Default::default()
            },
            |_, _| {},
        )
        .unwrap();
        for r in x.iter().take(20) {
            let (bias, c) = m.contributions(r).unwrap();
            let total = bias + c.iter().sum::<f64>();
            assert!((total - m.raw(r).unwrap()).abs() < 1e-9);
        }
    }

    #[test]
    fn binned_and_raw_traversal_agree() {
        let (x, y) = toy(300);
        let p = GbdtParams {
            n_trees: 5,
            max_bins: 8,
            ..Default::default()
        };
        let binned = bin_features(&x, 3, p.max_bins);
        let m = Gbdt::fit(&x, &y, &p, |_, _| {}).unwrap();
        for t in &m.trees {
            for (i, r) in x.iter().enumerate() {
                assert_eq!(t.leaf(r), t.leaf_binned(&binned, i));
            }
        }
    }
}
