//! Loader for MovieLens in RecBole's atomic `.inter` layout (as shipped in the `recbole` wheel:
//! a header `user_id:token`, `item_id:token`, `rating:float`, `timestamp:float`, then tab-separated
//! rows). Every rating counts as an interaction; each user's items are ordered by time. MovieLens
//! timestamps are seconds and many ratings share one (415 of the 943 users of ML-100k rated their
//! last two movies in the same second), so the order within a second is a choice: [`TieOrder`].

use std::collections::HashMap;
use std::path::Path;

use crate::error::{AiError, Result};

/// One customer's items, oldest first.
pub type Sequence = (String, Vec<String>);

/// How interactions with the same timestamp are ordered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TieOrder {
    /// By item id (numerically when both ids are numbers), as a sort on `(user, timestamp,
    /// item)` does; the protocol of the reference figures in issue 6.
    #[default]
    ItemId,
    /// In the order of the file.
    FileOrder,
}

fn item_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    match (a.parse::<u64>(), b.parse::<u64>()) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        _ => a.cmp(b),
    }
}

/// Reads an atomic `.inter` file into per-user sequences (users in order of first appearance).
pub fn load_inter(path: &Path, ties: TieOrder) -> Result<Vec<Sequence>> {
    let text = std::fs::read_to_string(path).map_err(|source| AiError::Io {
        path: path.display().to_string(),
        source,
    })?;
    parse_inter(&text, &path.display().to_string(), ties)
}

/// Parses the text of an atomic `.inter` file; `name` is used in error messages.
pub fn parse_inter(text: &str, name: &str, ties: TieOrder) -> Result<Vec<Sequence>> {
    let mut lines = text.lines().enumerate();
    let header = lines
        .next()
        .map(|(_, h)| h)
        .ok_or_else(|| AiError::Data(format!("{name}: empty file")))?;
    let cols: Vec<&str> = header
        .split('\t')
        .map(|c| c.split(':').next().unwrap_or(c).trim())
        .collect();
    let col = |want: &str| {
        cols.iter()
            .position(|c| *c == want)
            .ok_or_else(|| AiError::Data(format!("{name}: no {want} column in the header")))
    };
    let (u, i, t) = (col("user_id")?, col("item_id")?, col("timestamp")?);
    let width = u.max(i).max(t) + 1;

    let mut order: Vec<String> = Vec::new();
    let mut rows: HashMap<String, Vec<(f64, usize, String)>> = HashMap::new();
    for (n, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() < width {
            return Err(AiError::Data(format!(
                "{name} line {}: {} fields, expected at least {width}",
                n + 1,
                f.len()
            )));
        }
        let (user, item) = (f[u].trim(), f[i].trim());
        if user.is_empty() || item.is_empty() {
            return Err(AiError::Data(format!("{name} line {}: empty id", n + 1)));
        }
        let time: f64 = f[t]
            .trim()
            .parse()
            .ok()
            .filter(|x: &f64| x.is_finite())
            .ok_or_else(|| {
                AiError::Data(format!("{name} line {}: bad timestamp {:?}", n + 1, f[t]))
            })?;
        let entry = rows.entry(user.to_owned()).or_insert_with(|| {
            order.push(user.to_owned());
            Vec::new()
        });
        entry.push((time, n, item.to_owned()));
    }
    if order.is_empty() {
        return Err(AiError::Data(format!("{name}: no interactions")));
    }
    Ok(order
        .into_iter()
        .map(|user| {
            let mut r = rows.remove(&user).unwrap_or_default();
            r.sort_by(|a, b| {
                let tie = match ties {
                    TieOrder::ItemId => item_cmp(&a.2, &b.2),
                    TieOrder::FileOrder => std::cmp::Ordering::Equal,
                };
                a.0.total_cmp(&b.0).then(tie).then(a.1.cmp(&b.1))
            });
            (user, r.into_iter().map(|(_, _, item)| item).collect())
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n\
        1\t10\t5\t300\n2\t10\t3\t100\n1\t11\t4\t100\n1\t12\t4\t300\n";

    #[test]
    fn orders_by_time_then_file_order() {
        let s = parse_inter(SAMPLE, "sample", TieOrder::FileOrder).unwrap();
        assert_eq!(s[0].0, "1");
        assert_eq!(s[0].1, vec!["11", "10", "12"]);
        assert_eq!(s[1], ("2".to_owned(), vec!["10".to_owned()]));
    }

    #[test]
    fn orders_ties_by_numeric_item_id() {
        let text = "user_id\titem_id\ttimestamp\n1\t10\t5\n1\t9\t5\n1\t100\t5\n1\t3\t9\n";
        let s = parse_inter(text, "t", TieOrder::ItemId).unwrap();
        assert_eq!(s[0].1, vec!["9", "10", "100", "3"]);
    }

    #[test]
    fn bad_rows_are_data_errors_naming_the_line() {
        let bad = "user_id:token\titem_id:token\ttimestamp:float\n1\t2\tsoon\n";
        let err = parse_inter(bad, "f", TieOrder::ItemId).unwrap_err();
        assert!(
            matches!(&err, AiError::Data(m) if m.contains("line 2")),
            "{err}"
        );
        assert!(parse_inter("", "f", TieOrder::ItemId).is_err());
        assert!(parse_inter("user_id\titem_id\n", "f", TieOrder::ItemId).is_err());
        assert!(parse_inter("user_id\titem_id\ttimestamp\n1\t2\n", "f", TieOrder::ItemId).is_err());
        assert!(parse_inter("user_id\titem_id\ttimestamp\n", "f", TieOrder::ItemId).is_err());
    }

    #[test]
    fn missing_file_is_io_error() {
        assert!(matches!(
            load_inter(Path::new("/nonexistent/ml.inter"), TieOrder::ItemId),
            Err(AiError::Io { .. })
        ));
    }
}
