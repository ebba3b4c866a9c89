//! Loader for MovieLens in RecBole's atomic `.inter` layout (as shipped in the `recbole` wheel:
//! a header `user_id:token	item_id:token	rating:float	timestamp:float`, then tab-separated
//! rows). Every rating counts as an interaction; each user's items are ordered by time, ties kept
//! in file order.

use std::collections::HashMap;
use std::path::Path;

use crate::error::{AiError, Result};

/// One customer's items, oldest first.
pub type Sequence = (String, Vec<String>);

/// Reads an atomic `.inter` file into per-user sequences (users in order of first appearance).
pub fn load_inter(path: &Path) -> Result<Vec<Sequence>> {
    let text = std::fs::read_to_string(path).map_err(|source| AiError::Io {
        path: path.display().to_string(),
        source,
    })?;
    parse_inter(&text, &path.display().to_string())
}

/// Parses the text of an atomic `.inter` file; `name` is used in error messages.
pub fn parse_inter(text: &str, name: &str) -> Result<Vec<Sequence>> {
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
        let time: f64 = f[t].trim().parse().ok().filter(|x: &f64| x.is_finite()).ok_or_else(
            || AiError::Data(format!("{name} line {}: bad timestamp {:?}", n + 1, f[t])),
        )?;
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
            r.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
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
        let s = parse_inter(SAMPLE, "sample").unwrap();
        assert_eq!(s[0].0, "1");
        assert_eq!(s[0].1, vec!["11", "10", "12"]);
        assert_eq!(s[1], ("2".to_owned(), vec!["10".to_owned()]));
    }

    #[test]
    fn bad_rows_are_data_errors_naming_the_line() {
        let bad = "user_id:token\titem_id:token\ttimestamp:float\n1\t2\tsoon\n";
        let err = parse_inter(bad, "f").unwrap_err();
        assert!(matches!(&err, AiError::Data(m) if m.contains("line 2")), "{err}");
        assert!(parse_inter("", "f").is_err());
        assert!(parse_inter("user_id\titem_id\n", "f").is_err());
        assert!(parse_inter("user_id\titem_id\ttimestamp\n1\t2\n", "f").is_err());
        assert!(parse_inter("user_id\titem_id\ttimestamp\n", "f").is_err());
    }

    #[test]
    fn missing_file_is_io_error() {
        assert!(matches!(
            load_inter(Path::new("/nonexistent/ml.inter")),
            Err(AiError::Io { .. })
        ));
    }
}
