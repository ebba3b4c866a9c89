//! Reading YAML documents (yaml-rust2) as the checks need them.

use std::collections::BTreeMap;

use yaml_rust2::{Yaml, YamlLoader};

/// Every document of `text`.
pub(crate) fn load(text: &str) -> Result<Vec<Yaml>, String> {
    YamlLoader::load_from_str(text).map_err(|e| e.to_string())
}

/// The value at `path` (keys of nested mappings).
pub(crate) fn get<'a>(y: &'a Yaml, path: &[&str]) -> Option<&'a Yaml> {
    path.iter().try_fold(y, |y, key| {
        y.as_hash()?.get(&Yaml::String((*key).to_owned()))
    })
}

/// A scalar as text (compose and Kubernetes accept numbers and booleans where text is meant).
pub(crate) fn scalar(y: &Yaml) -> Option<String> {
    match y {
        Yaml::String(s) | Yaml::Real(s) => Some(s.clone()),
        Yaml::Integer(i) => Some(i.to_string()),
        Yaml::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The scalar at `path`.
pub(crate) fn text(y: &Yaml, path: &[&str]) -> Option<String> {
    get(y, path).and_then(scalar)
}

/// A sequence of scalars.
pub(crate) fn strings(y: &Yaml) -> Option<Vec<String>> {
    y.as_vec()?.iter().map(scalar).collect()
}

/// The items of the sequence at `path` (none when absent).
pub(crate) fn items<'a>(y: &'a Yaml, path: &[&str]) -> &'a [Yaml] {
    get(y, path)
        .and_then(Yaml::as_vec)
        .map_or(&[], Vec::as_slice)
}

/// A mapping of scalars, or a sequence of `KEY=value` (compose's two forms of `environment`).
pub(crate) fn string_map(y: &Yaml) -> Option<BTreeMap<String, String>> {
    if let Some(hash) = y.as_hash() {
        return hash
            .iter()
            .map(|(k, v)| Some((scalar(k)?, scalar(v)?)))
            .collect();
    }
    strings(y)?
        .into_iter()
        .map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
        })
        .collect()
}

/// The keys of the mapping at `path`.
pub(crate) fn keys(y: &Yaml, path: &[&str]) -> Vec<String> {
    get(y, path)
        .and_then(Yaml::as_hash)
        .map(|h| h.keys().filter_map(scalar).collect())
        .unwrap_or_default()
}
