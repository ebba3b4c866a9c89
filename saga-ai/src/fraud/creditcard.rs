//! A loader for the public credit-card-fraud CSV layout (`Time, V1..V28, Amount, Class`; the
//! ULB / Worldline data set): a header line, then 31 numeric columns per line. Quoted values
//! (`"0"`) are accepted. Errors name the line (1-based, header included) and the column.

use std::io::BufRead;
use std::path::Path;

use crate::error::{AiError, Result};

/// One row.
#[derive(Debug, Clone, PartialEq)]
pub struct CardRecord {
    /// Seconds since the first transaction.
    pub time: f64,
    /// The 28 PCA components `V1..V28`.
    pub v: [f64; 28],
    /// The amount (>= 0).
    pub amount: f64,
    /// Fraud (`Class` = 1).
    pub fraud: bool,
}

impl CardRecord {
    /// The 30 model inputs: time, V1..V28, amount.
    pub fn features(&self) -> Vec<f64> {
        let mut f = Vec::with_capacity(30);
        f.push(self.time);
        f.extend_from_slice(&self.v);
        f.push(self.amount);
        f
    }
}

fn expected_header() -> Vec<String> {
    let mut h = vec!["Time".to_string()];
    h.extend((1..=28).map(|i| format!("V{i}")));
    h.push("Amount".into());
    h.push("Class".into());
    h
}

fn unquote(s: &str) -> &str {
    let s = s.trim();
    s.strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(s)
}

/// Parses CSV text from `reader`; `name` names the source in errors.
pub fn parse_creditcard_csv(reader: impl BufRead, name: &str) -> Result<Vec<CardRecord>> {
    let header = expected_header();
    let mut lines = reader.lines();
    let first = match lines.next() {
        None => return Err(AiError::Data(format!("{name}: empty file, no header"))),
        Some(l) => l.map_err(|e| AiError::Data(format!("{name}, line 1: {e}")))?,
    };
    let got: Vec<&str> = first.split(',').map(unquote).collect();
    if got.len() != header.len() {
        return Err(AiError::Data(format!(
            "{name}, line 1: header has {} columns, expected {} (Time, V1..V28, Amount, Class)",
            got.len(),
            header.len()
        )));
    }
    if let Some(c) = (0..header.len()).find(|&c| got[c] != header[c]) {
        return Err(AiError::Data(format!(
            "{name}, line 1, column {}: header is {:?}, expected {:?}",
            c + 1,
            got[c],
            header[c]
        )));
    }
    let mut out = Vec::new();
    for (k, line) in lines.enumerate() {
        let line_no = k + 2;
        let line = line.map_err(|e| AiError::Data(format!("{name}, line {line_no}: {e}")))?;
        if line.trim().is_empty() {
            continue;
        }
        let cells: Vec<&str> = line.split(',').map(unquote).collect();
        if cells.len() != header.len() {
            return Err(AiError::Data(format!(
                "{name}, line {line_no}: {} columns, expected {}",
                cells.len(),
                header.len()
            )));
        }
        let mut values = [0.0; 31];
        for (c, cell) in cells.iter().enumerate() {
            let v: f64 = cell.parse().map_err(|_| {
                AiError::Data(format!(
                    "{name}, line {line_no}, column {} ({}): {cell:?} is not a number",
                    c + 1,
                    header[c]
                ))
            })?;
            if !v.is_finite() {
                return Err(AiError::Data(format!(
                    "{name}, line {line_no}, column {} ({}): {cell:?} is not finite",
                    c + 1,
                    header[c]
                )));
            }
            values[c] = v;
        }
        let amount = values[29];
        if amount < 0.0 {
            return Err(AiError::Data(format!(
                "{name}, line {line_no}, column 30 (Amount): negative amount {amount}"
            )));
        }
        let fraud = match values[30] {
            0.0 => false,
            1.0 => true,
            other => {
                return Err(AiError::Data(format!(
                    "{name}, line {line_no}, column 31 (Class): {other} is not 0 or 1"
                )));
            }
        };
        let mut v = [0.0; 28];
        v.copy_from_slice(&values[1..29]);
        out.push(CardRecord {
            time: values[0],
            v,
            amount,
            fraud,
        });
    }
    Ok(out)
}

/// Reads a CSV file in the credit-card-fraud layout.
pub fn load_creditcard_csv(path: &Path) -> Result<Vec<CardRecord>> {
    let file = std::fs::File::open(path).map_err(|source| AiError::Io {
        path: path.display().to_string(),
        source,
    })?;
    parse_creditcard_csv(std::io::BufReader::new(file), &path.display().to_string())
}
