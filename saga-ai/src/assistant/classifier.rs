//! The intent classifier: multinomial logistic regression on words, word pairs and character
//! n-grams, trained by full-batch gradient descent with momentum. Deterministic: the same
//! training phrases give the same weights.
//!
//! Features of a message, in two groups each scaled to unit length (so short messages such as
//! "yes" and long ones weigh alike, and the many character n-grams do not drown the words):
//! - words and word pairs, with `<s>` and `</s>` around the message (`b:<s> yes`). Words after
//!   a negation (`dont`, `not`, `never`) are marked (`!replay`), so "don't replay" is not a
//!   request to replay;
//! - character 3- to 5-grams of each word (`^stat`, `tus$`), scaled by
//!   [`TrainParams::char_weight`]: a misspelt word the spelling corrector missed still shares
//!   most of them with the right word.

use std::collections::HashMap;

use crate::error::{AiError, Result};

/// Training settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrainParams {
    /// Gradient-descent iterations over the whole training set.
    pub iterations: usize,
    /// Step size.
    pub learning_rate: f64,
    /// Momentum of the steps (0 = plain gradient descent).
    pub momentum: f64,
    /// L2 penalty on the weights (not on the per-class bias).
    pub l2: f64,
    /// Length of the character n-gram group relative to the word group (1 = equal).
    pub char_weight: f64,
}

impl Default for TrainParams {
    fn default() -> Self {
        Self {
            iterations: 300,
            learning_rate: 2.0,
            momentum: 0.9,
            l2: 1e-4,
            char_weight: 1.0,
        }
    }
}

/// Words that negate what follows them in the message.
const NEGATIONS: &[&str] = &["dont", "not", "never", "cant"];

/// The features of a message given as its words (placeholders such as `<id>` included), each
/// with its value.
pub(crate) fn features(words: &[String], char_weight: f64) -> Vec<(String, f64)> {
    let mut negated = false;
    let marked: Vec<String> = words
        .iter()
        .map(|w| {
            let m = if negated && !w.starts_with('<') {
                format!("!{w}")
            } else {
                w.clone()
            };
            negated |= NEGATIONS.contains(&w.as_str());
            m
        })
        .collect();
    let mut word_feats: Vec<String> = marked.iter().map(|w| format!("w:{w}")).collect();
    let padded: Vec<&str> = std::iter::once("<s>")
        .chain(marked.iter().map(String::as_str))
        .chain(std::iter::once("</s>"))
        .collect();
    word_feats.extend(padded.windows(2).map(|p| format!("b:{} {}", p[0], p[1])));
    let mut char_feats = Vec::new();
    for w in words.iter().filter(|w| !w.starts_with('<')) {
        let chars: Vec<char> = format!("^{w}$").chars().collect();
        for n in 3..=5 {
            char_feats.extend(
                chars
                    .windows(n)
                    .map(|g| format!("c:{}", g.iter().collect::<String>())),
            );
        }
    }
    let mut out = Vec::with_capacity(word_feats.len() + char_feats.len());
    for (mut group, weight) in [(word_feats, 1.0), (char_feats, char_weight)] {
        group.sort_unstable();
        group.dedup();
        let value = weight / (group.len().max(1) as f64).sqrt();
        out.extend(group.into_iter().map(|f| (f, value)));
    }
    out
}

/// A trained classifier over `classes` labels.
#[derive(Debug, Clone)]
pub(crate) struct Classifier {
    vocab: HashMap<String, usize>,
    /// Row-major `features x classes`.
    weights: Vec<f64>,
    bias: Vec<f64>,
    classes: usize,
    char_weight: f64,
}

/// A message as `(feature index, value)` pairs.
type Sparse = Vec<(usize, f64)>;

impl Classifier {
    /// Fits the classifier on `(label, words)` examples; labels are `0..classes`.
    pub(crate) fn train(
        examples: &[(usize, Vec<String>)],
        classes: usize,
        params: TrainParams,
    ) -> Result<Self> {
        if examples.is_empty() || classes < 2 {
            return Err(AiError::NotEnoughData(format!(
                "{} examples over {classes} classes",
                examples.len()
            )));
        }
        if let Some((label, _)) = examples.iter().find(|(l, _)| *l >= classes) {
            return Err(AiError::InvalidInput(format!(
                "label {label} of {classes} classes"
            )));
        }
        let mut vocab = HashMap::new();
        let data: Vec<(usize, Sparse)> = examples
            .iter()
            .map(|(label, words)| {
                let x: Sparse = features(words, params.char_weight)
                    .into_iter()
                    .map(|(f, v)| {
                        let next = vocab.len();
                        (*vocab.entry(f).or_insert(next), v)
                    })
                    .collect();
                (*label, x)
            })
            .collect();

        let f = vocab.len();
        let n = data.len() as f64;
        let mut model = Self {
            vocab,
            weights: vec![0.0; f * classes],
            bias: vec![0.0; classes],
            classes,
            char_weight: params.char_weight,
        };
        let mut grad_w = vec![0.0; f * classes];
        let mut grad_b = vec![0.0; classes];
        let mut vel_w = vec![0.0; f * classes];
        let mut vel_b = vec![0.0; classes];
        let mut probs = vec![0.0; classes];
        for _ in 0..params.iterations {
            for (g, w) in grad_w.iter_mut().zip(&model.weights) {
                *g = params.l2 * w;
            }
            grad_b.iter_mut().for_each(|g| *g = 0.0);
            for (label, x) in &data {
                model.probabilities_into(x, &mut probs);
                probs[*label] -= 1.0;
                for &(i, v) in x {
                    let row = &mut grad_w[i * classes..(i + 1) * classes];
                    for (g, p) in row.iter_mut().zip(&probs) {
                        *g += p * v / n;
                    }
                }
                for (g, p) in grad_b.iter_mut().zip(&probs) {
                    *g += p / n;
                }
            }
            for ((w, v), g) in model.weights.iter_mut().zip(&mut vel_w).zip(&grad_w) {
                *v = params.momentum * *v - params.learning_rate * g;
                *w += *v;
            }
            for ((b, v), g) in model.bias.iter_mut().zip(&mut vel_b).zip(&grad_b) {
                *v = params.momentum * *v - params.learning_rate * g;
                *b += *v;
            }
        }
        Ok(model)
    }

    fn probabilities_into(&self, x: &[(usize, f64)], out: &mut [f64]) {
        out.copy_from_slice(&self.bias);
        for &(i, v) in x {
            let row = &self.weights[i * self.classes..(i + 1) * self.classes];
            for (o, w) in out.iter_mut().zip(row) {
                *o += w * v;
            }
        }
        let max = out.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let mut sum = 0.0;
        for o in out.iter_mut() {
            *o = (*o - max).exp();
            sum += *o;
        }
        out.iter_mut().for_each(|o| *o /= sum);
    }

    /// The probability of each class for a message given as its words. Features never seen in
    /// training are ignored; a message with none gets the classes' prior.
    pub(crate) fn probabilities(&self, words: &[String]) -> Vec<f64> {
        let x: Sparse = features(words, self.char_weight)
            .into_iter()
            .filter_map(|(f, v)| Some((*self.vocab.get(&f)?, v)))
            .collect();
        let mut out = vec![0.0; self.classes];
        self.probabilities_into(&x, &mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn learns_separable_phrases_and_generalises_to_typos() {
        let examples: Vec<(usize, Vec<String>)> = [
            (0, "what is the status of order <id>"),
            (0, "where is my order <id>"),
            (0, "order <id> status"),
            (1, "how much revenue <period>"),
            (1, "revenue <period>"),
            (1, "what did we earn <period>"),
        ]
        .into_iter()
        .map(|(l, s)| (l, words(s)))
        .collect();
        let c = Classifier::train(&examples, 2, TrainParams::default()).unwrap();
        let p = c.probabilities(&words("stauts of ordr <id>"));
        assert!(p[0] > 0.7, "{p:?}");
        let p = c.probabilities(&words("revnue <period>"));
        assert!(p[1] > 0.7, "{p:?}");
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-9);
    }

    #[test]
    fn bad_training_sets_are_errors() {
        assert!(Classifier::train(&[], 2, TrainParams::default()).is_err());
        let one = vec![(3, words("x"))];
        assert!(Classifier::train(&one, 2, TrainParams::default()).is_err());
    }
}
