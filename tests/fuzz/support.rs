//! What every target shares: how many cases to run, the committed corpus, and mutations
//! that turn a valid-looking input into a nearly valid one.

use std::path::PathBuf;

use proptest::prelude::*;
use proptest::test_runner::Config;

/// Cases per property. CI runs the default; a long run sets `MEDPORT_FUZZ_CASES=1000000`.
pub const CASES_VAR: &str = "MEDPORT_FUZZ_CASES";
const DEFAULT_CASES: u32 = 20_000;

pub fn cases() -> u32 {
    std::env::var(CASES_VAR)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(DEFAULT_CASES)
}

/// Failures are not written next to the sources: a minimal failing input belongs in the
/// corpus as a named file, where every later run replays it.
pub fn config() -> Config {
    Config {
        cases: cases(),
        failure_persistence: None,
        max_shrink_iters: 10_000,
        ..Config::default()
    }
}

fn corpus_dir(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz/corpus")
        .join(target)
}

/// Every file of a target's corpus as (file name, bytes), sorted by name. An empty or
/// missing corpus is a mistake in the checkout, so it fails loudly.
pub fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = corpus_dir(target);
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&path).unwrap())
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "corpus {} is empty", dir.display());
    files
}

/// Runs `check` on every corpus file and reports all failures at once, by file name.
pub fn replay(target: &str, check: impl Fn(&str, &[u8]) -> Result<(), TestCaseError>) {
    let failures: Vec<String> = corpus(target)
        .iter()
        .filter_map(|(name, bytes)| {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(name, bytes)))
                .map_err(|_| TestCaseError::fail("panicked"))
                .and_then(|r| r)
                .err()
                .map(|e| format!("{target}/{name}: {e}"))
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A corpus file as text (header values and names are text by the time they are parsed).
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// One edit of a byte string; positions wrap around the current length.
#[derive(Debug, Clone)]
pub enum Edit<T> {
    Insert(usize, Vec<T>),
    Delete(usize, usize),
    Replace(usize, T),
    Duplicate(usize, usize),
    Truncate(usize),
    Swap(usize, usize),
}

pub fn apply<T: Clone>(mut v: Vec<T>, edits: &[Edit<T>]) -> Vec<T> {
    for edit in edits {
        let len = v.len();
        let at = |i: usize| if len == 0 { 0 } else { i % (len + 1) };
        match edit {
            Edit::Insert(i, items) => {
                let i = at(*i);
                v.splice(i..i, items.iter().cloned());
            }
            Edit::Delete(i, n) if len > 0 => {
                let i = i % len;
                let end = (i + n).min(len);
                v.drain(i..end);
            }
            Edit::Replace(i, item) if len > 0 => v[i % len] = item.clone(),
            Edit::Duplicate(i, n) if len > 0 => {
                let i = i % len;
                let end = (i + n).min(len);
                let copy: Vec<T> = v[i..end].to_vec();
                v.splice(end..end, copy);
            }
            Edit::Truncate(i) => v.truncate(at(*i)),
            Edit::Swap(i, j) if len > 0 => v.swap(i % len, j % len),
            _ => {}
        }
    }
    v
}

fn edits<T: Clone + std::fmt::Debug + 'static>(
    item: impl Strategy<Value = T> + Clone + 'static,
) -> impl Strategy<Value = Vec<Edit<T>>> {
    let pos = 0usize..4096;
    let edit = prop_oneof![
        3 => (pos.clone(), prop::collection::vec(item.clone(), 1..4))
            .prop_map(|(i, items)| Edit::Insert(i, items)),
        2 => (pos.clone(), 1usize..8).prop_map(|(i, n)| Edit::Delete(i, n)),
        3 => (pos.clone(), item).prop_map(|(i, c)| Edit::Replace(i, c)),
        1 => (pos.clone(), 1usize..16).prop_map(|(i, n)| Edit::Duplicate(i, n)),
        1 => pos.clone().prop_map(Edit::Truncate),
        1 => (pos.clone(), pos).prop_map(|(i, j)| Edit::Swap(i, j)),
    ];
    prop::collection::vec(edit, 0..4)
}

/// Characters that matter to the text parsers: separators, padding, signs, whitespace of
/// every kind, path separators, controls, bidi and invisible characters, combining marks.
pub fn tricky_char() -> impl Strategy<Value = char> + Clone {
    prop_oneof![
        4 => proptest::sample::select(vec![
            ',', ' ', '\t', '=', '+', '-', '/', '\\', '.', ':', ';', '"', '%', '0', '9', 'A',
            'z', '\0', '\n', '\r', '\u{7f}', '\u{85}', '\u{a0}', '\u{ad}', '\u{301}', '\u{327}',
            '\u{34f}', '\u{200b}', '\u{200d}', '\u{202e}', '\u{2066}', '\u{2028}', '\u{3000}',
            '\u{feff}', '\u{fe0f}', '\u{ff0f}', '\u{2215}', '\u{e0041}', '\u{13439}',
            '\u{1d173}', '\u{10ffff}', 'é', 'ß', 'ﬃ', 'İ', 'Å', '\u{212b}', '\u{1f600}',
        ]),
        1 => any::<char>(),
    ]
}

/// A valid-looking string with up to three edits drawn from [`tricky_char`].
pub fn mutated_text(base: impl Strategy<Value = String>) -> impl Strategy<Value = String> {
    (base, edits(tricky_char())).prop_map(|(s, e)| {
        apply(s.chars().collect(), &e)
            .into_iter()
            .collect::<String>()
    })
}

/// Up to three byte-level edits, for [`apply`].
pub fn byte_edits() -> impl Strategy<Value = Vec<Edit<u8>>> {
    let byte = prop_oneof![
        3 => proptest::sample::select(vec![0u8, 0x01, 0x7f, 0x80, 0xff, b'M', b'Z', b'#', b'!']),
        2 => any::<u8>(),
    ];
    edits(byte)
}

/// Bytes with up to three byte-level edits.
pub fn mutated_bytes(base: impl Strategy<Value = Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    (base, byte_edits()).prop_map(|(b, e)| apply(b, &e))
}

/// Fails the case with `message` unless `ok` (the message is built only on failure).
pub fn ensure(ok: bool, message: impl FnOnce() -> String) -> Result<(), TestCaseError> {
    if ok {
        Ok(())
    } else {
        Err(TestCaseError::fail(message()))
    }
}
