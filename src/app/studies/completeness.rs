//! Which files a DICOMDIR lists that the server does not hold. An entry names its SOP
//! instance (matched against the study's stored instances) or, when the record carries
//! none, only its path (matched, ignoring case as CD file systems do, against the paths the
//! stored instances were sent under). An entry that names no study belongs to the studies
//! whose instances came in the same batch as its DICOMDIR.

use std::collections::{BTreeMap, HashMap, HashSet};

/// One DICOMDIR entry, with the batch its DICOMDIR came in.
pub(crate) struct Entry<'a> {
    pub batch: Option<&'a str>,
    pub study: Option<&'a str>,
    pub sop: Option<&'a str>,
    pub path: &'a str,
}

/// One counted instance.
pub(crate) struct Stored<'a> {
    pub study: &'a str,
    pub sop: Option<&'a str>,
    pub path: Option<&'a str>,
    pub batch: Option<&'a str>,
}

/// The paths each study is missing, sorted; studies missing nothing are absent. `only`
/// restricts the answer to one study.
pub(crate) fn missing(
    entries: &[Entry<'_>],
    stored: &[Stored<'_>],
    only: Option<&str>,
) -> BTreeMap<String, Vec<String>> {
    let mut by_batch: HashMap<&str, HashSet<&str>> = HashMap::new();
    let mut sops: HashSet<(&str, &str)> = HashSet::new();
    let mut paths: HashSet<(&str, String)> = HashSet::new();
    for s in stored {
        if let Some(batch) = s.batch {
            by_batch.entry(batch).or_default().insert(s.study);
        }
        if let Some(sop) = s.sop {
            sops.insert((s.study, sop));
        }
        if let Some(path) = s.path {
            paths.insert((s.study, path.to_lowercase()));
        }
    }
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for entry in entries {
        let studies: Vec<&str> = match entry.study {
            Some(study) => vec![study],
            None => entry
                .batch
                .and_then(|b| by_batch.get(b))
                .map(|s| s.iter().copied().collect())
                .unwrap_or_default(),
        };
        for study in studies.into_iter().filter(|s| only.is_none_or(|o| o == *s)) {
            let held = match entry.sop {
                Some(sop) => sops.contains(&(study, sop)),
                None => paths.contains(&(study, entry.path.to_lowercase())),
            };
            if !held {
                out.entry(study.to_string())
                    .or_default()
                    .push(entry.path.to_string());
            }
        }
    }
    for list in out.values_mut() {
        list.sort();
        list.dedup();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry<'a>(study: Option<&'a str>, sop: Option<&'a str>, path: &'a str) -> Entry<'a> {
        Entry {
            batch: Some("b1"),
            study,
            sop,
            path,
        }
    }

    #[test]
    fn an_entry_is_held_by_its_sop_instance_or_else_by_its_path_in_any_case() {
        let stored = [
            Stored {
                study: "1.2",
                sop: Some("1.2.1"),
                path: Some("CD/IM1"),
                batch: Some("b1"),
            },
            Stored {
                study: "1.2",
                sop: Some("1.2.2"),
                path: Some("CD/IM2"),
                batch: Some("b1"),
            },
        ];
        let entries = [
            entry(Some("1.2"), Some("1.2.1"), "CD/IM1"),
            entry(Some("1.2"), Some("1.2.3"), "CD/IM3"),
            entry(None, None, "cd/im2"),
            entry(None, None, "CD/IM4"),
            entry(Some("9.9"), Some("9.9.1"), "CD/OTHER"),
        ];
        let all = missing(&entries, &stored, None);
        assert_eq!(all["1.2"], ["CD/IM3", "CD/IM4"]);
        assert_eq!(all["9.9"], ["CD/OTHER"]);
        let one = missing(&entries, &stored, Some("1.2"));
        assert_eq!(one.len(), 1);
    }

    #[test]
    fn a_study_whose_every_entry_is_held_is_complete() {
        let stored = [Stored {
            study: "1.2",
            sop: Some("1.2.1"),
            path: None,
            batch: None,
        }];
        let entries = [entry(Some("1.2"), Some("1.2.1"), "CD/IM1")];
        assert!(missing(&entries, &stored, None).is_empty());
    }
}
