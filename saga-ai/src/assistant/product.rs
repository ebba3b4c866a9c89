//! Product names in a message, matched against the caller's catalog with typos and partial
//! names allowed ("desk lmap", "the headphones").
//!
//! Each word of a product's name is looked for among the message's words, one edit allowed from
//! 4 characters and two from 6, a trailing `s` ignored. A product matches when the words found
//! cover at least half of its name (by characters), or when a word found belongs to that
//! product alone in the catalog (`headphones` names "Noise-Cancelling Headphones" if no other
//! product has that word). The best-covered product wins.

use serde::{Deserialize, Serialize};

use super::text::{Token, allowed_edits, edit_distance, tokenize};

/// A product the assistant can name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Product {
    /// The application's id of the product.
    pub id: String,
    /// Its display name, as users would write it.
    pub name: String,
}

impl Product {
    /// A product from its id and name.
    pub fn new(id: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            name: name.into(),
        }
    }
}

/// A product found in a message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProductMatch {
    /// The catalog's product.
    pub product: Product,
    /// How much of its name was found, 0 to 1 (1 = every word, spelled as in the catalog).
    pub score: f64,
}

/// Words never taken as part of a product name.
const STOPWORDS: &[&str] = &[
    "a", "an", "and", "any", "are", "do", "for", "have", "how", "in", "is", "it", "left", "many",
    "much", "my", "of", "on", "or", "our", "the", "to", "we", "what", "with",
];

/// The lowest coverage accepted without a word unique to the product.
const MIN_COVERAGE: f64 = 0.5;

fn stem(w: &str) -> &str {
    if w.len() > 3 {
        w.strip_suffix('s').unwrap_or(w)
    } else {
        w
    }
}

/// Similarity of a product word and a message word: 1 when equal, less per edit, 0 beyond the
/// allowed edits.
fn similarity(product_word: &str, word: &str) -> f64 {
    if product_word == word || stem(product_word) == stem(word) {
        return 1.0;
    }
    let d = edit_distance(product_word, word).min(edit_distance(stem(product_word), stem(word)));
    let len = product_word.chars().count();
    if d > allowed_edits(len) {
        return 0.0;
    }
    1.0 - d as f64 / len.max(word.chars().count()) as f64
}

fn name_words(name: &str) -> Vec<String> {
    tokenize(name)
        .iter()
        .filter_map(|t| t.text().map(str::to_owned))
        .filter(|w| !STOPWORDS.contains(&w.as_str()))
        .collect()
}

/// The best-matching product of `catalog` in `tokens` and the indices of the tokens naming it.
/// Tokens with `taken[i]` set are not looked at.
pub(crate) fn find_product(
    tokens: &[Token],
    taken: &[bool],
    catalog: &[Product],
) -> Option<(ProductMatch, Vec<usize>)> {
    let names: Vec<Vec<String>> = catalog.iter().map(|p| name_words(&p.name)).collect();
    let unique = |w: &str| {
        names
            .iter()
            .filter(|ws| ws.iter().any(|x| stem(x) == stem(w)))
            .count()
            == 1
    };
    let candidates: Vec<(usize, &str)> = tokens
        .iter()
        .enumerate()
        .filter(|(i, _)| !taken.get(*i).copied().unwrap_or(false))
        .filter_map(|(i, t)| t.text().map(|w| (i, w)))
        .filter(|(_, w)| !STOPWORDS.contains(w))
        .collect();

    let mut best: Option<(f64, usize, usize, Vec<usize>)> = None; // coverage, found, product, at
    for (p, words) in names.iter().enumerate() {
        let total: usize = words.iter().map(|w| w.chars().count()).sum();
        if total == 0 {
            continue;
        }
        let (mut covered, mut used, mut distinctive) = (0.0, Vec::new(), false);
        for w in words {
            let hit = candidates
                .iter()
                .filter(|(i, _)| !used.contains(i))
                .map(|&(i, m)| (similarity(w, m), i))
                .filter(|(s, _)| *s > 0.0)
                .max_by(|a, b| a.0.total_cmp(&b.0).then(b.1.cmp(&a.1)));
            if let Some((s, i)) = hit {
                covered += s * w.chars().count() as f64;
                used.push(i);
                distinctive |= w.chars().count() >= 4 && s >= 0.75 && unique(w);
            }
        }
        let coverage = covered / total as f64;
        if coverage < MIN_COVERAGE && !distinctive {
            continue;
        }
        let better = best.as_ref().is_none_or(|(c, n, _, _)| {
            coverage > *c + 1e-9 || ((coverage - *c).abs() <= 1e-9 && used.len() > *n)
        });
        if better {
            best = Some((coverage, used.len(), p, used));
        }
    }
    best.map(|(coverage, _, p, mut at)| {
        at.sort_unstable();
        let m = ProductMatch {
            product: catalog[p].clone(),
            score: coverage,
        };
        (m, at)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Vec<Product> {
        [
            ("p1", "Noise-Cancelling Headphones"),
            ("p2", "27\" Monitor"),
            ("p3", "Desk Lamp"),
            ("p4", "Coffee Mug"),
            ("p5", "Travel Mug"),
        ]
        .into_iter()
        .map(|(i, n)| Product::new(i, n))
        .collect()
    }

    fn find(text: &str) -> Option<String> {
        let tokens = tokenize(text);
        find_product(&tokens, &vec![false; tokens.len()], &catalog()).map(|(m, _)| m.product.id)
    }

    #[test]
    fn typos_plurals_and_partial_names() {
        assert_eq!(find("stock of desk lmap"), Some("p3".into()));
        assert_eq!(find("how many headphones are left"), Some("p1".into()));
        assert_eq!(find("the 27 inch monitr"), Some("p2".into()));
        assert_eq!(find("coffee mugs"), Some("p4".into()));
        assert_eq!(find("travel mug forecast"), Some("p5".into()));
    }

    #[test]
    fn shared_or_absent_words_do_not_match() {
        assert_eq!(find("mug"), None); // two mugs: ambiguous, half of neither name
        assert_eq!(find("how many orders today"), None);
        assert_eq!(find("what is the status"), None);
    }
}
