//! The layers point one way:
//!
//! ```text
//! domain  <-  config  <-  infra  <-  app  <-  web  <-  startup / cli
//! ```
//!
//! This test reads every file under `src/` and fails, naming the file, the line and the
//! path, when
//! - a file refers to a module of a higher layer (`crate::...` anywhere in the code);
//! - a file below `web` mentions actix (the application knows nothing of HTTP);
//! - a file outside `infra/db` uses Diesel (every SQL statement lives in the database layer);
//! - a web handler opens a database transaction (that is the application's work);
//! - the top-level modules form a cycle.
//!
//! What the code does not yet meet is listed in `KNOWN`, each entry with its reason. The
//! list must match exactly: a new violation fails, and so does an entry that no longer
//! occurs, so the list only ever shrinks.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Top-level modules and their layer; a module may use its own layer and those below.
const LAYERS: &[(&str, u8)] = &[
    ("domain", 0),
    ("config", 1),
    ("infra", 2),
    ("app", 3),
    ("web", 4),
    ("startup", 5),
    ("cli", 5),
    ("telemetry", 5),
    ("main", 5),
    ("lib", 5),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Rule {
    /// A lower layer refers to a higher one.
    Upward,
    /// actix below `web`.
    Actix,
    /// Diesel outside `infra/db`.
    Sql,
    /// A transaction opened in `web`.
    Transaction,
}

/// Violations not yet removed: (rule, file under `src/`, why it is still there).
const KNOWN: &[(Rule, &str, &str)] = &[];

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Violation {
    rule: Rule,
    file: String,
    line: usize,
    what: String,
}

fn module_of(file: &str) -> &str {
    let first = file.split('/').next().unwrap_or(file);
    first.strip_suffix(".rs").unwrap_or(first)
}

fn layer(module: &str) -> Option<u8> {
    LAYERS.iter().find(|(m, _)| *m == module).map(|(_, l)| *l)
}

/// The code of a line, without a trailing or whole-line comment (doc comments included).
fn code(line: &str) -> &str {
    match line.find("//") {
        Some(at) => &line[..at],
        None => line,
    }
}

/// Checks `files` (path under `src/`, contents); returns every violation and the
/// top-level module graph.
fn check(files: &[(String, String)]) -> (Vec<Violation>, BTreeMap<String, BTreeSet<String>>) {
    let path = regex::Regex::new(r"\bcrate::(\w+)").unwrap();
    let mut found = Vec::new();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (file, text) in files {
        let from = module_of(file);
        let from_layer =
            layer(from).unwrap_or_else(|| panic!("{file}: module `{from}` has no layer in LAYERS"));
        let in_db = file.starts_with("infra/db/");
        let mut rules_hit = BTreeSet::new();
        let mut in_tests = false;
        for (n, line) in text.lines().enumerate() {
            // Unit tests may build what they check with any tool; the layers still hold.
            in_tests |= line.trim() == "#[cfg(test)]";
            let code = code(line);
            for m in path.captures_iter(code) {
                let to = &m[1];
                if to == from {
                    continue;
                }
                let Some(to_layer) = layer(to) else {
                    continue; // a macro such as `crate::route_table!`
                };
                graph
                    .entry(from.to_string())
                    .or_default()
                    .insert(to.to_string());
                if to_layer > from_layer {
                    found.push(Violation {
                        rule: Rule::Upward,
                        file: file.clone(),
                        line: n + 1,
                        what: format!("`{from}` (layer {from_layer}) refers to `crate::{to}` (layer {to_layer})"),
                    });
                }
            }
            if in_tests {
                continue;
            }
            if from_layer < 4 && code.contains("actix") && rules_hit.insert(Rule::Actix) {
                found.push(Violation {
                    rule: Rule::Actix,
                    file: file.clone(),
                    line: n + 1,
                    what: "actix below the web layer".into(),
                });
            }
            if from_layer == 4 && code.contains("write_tx") && rules_hit.insert(Rule::Transaction) {
                found.push(Violation {
                    rule: Rule::Transaction,
                    file: file.clone(),
                    line: n + 1,
                    what: "a transaction opened in the web layer".into(),
                });
            }
            if !in_db && code.contains("diesel") && rules_hit.insert(Rule::Sql) {
                found.push(Violation {
                    rule: Rule::Sql,
                    file: file.clone(),
                    line: n + 1,
                    what: "Diesel outside infra/db".into(),
                });
            }
        }
    }
    (found, graph)
}

/// Top-level modules that reach themselves again through the graph.
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    for start in graph.keys() {
        let mut stack = vec![vec![start.clone()]];
        while let Some(route) = stack.pop() {
            let last = route.last().unwrap();
            for next in graph.get(last).into_iter().flatten() {
                if next == start {
                    let mut cycle = route.clone();
                    cycle.push(next.clone());
                    found.push(cycle);
                } else if !route.contains(next) && next > start {
                    let mut longer = route.clone();
                    longer.push(next.clone());
                    stack.push(longer);
                }
            }
        }
    }
    found
}

fn sources() -> Vec<(String, String)> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<(String, String)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, root, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/");
                out.push((rel, std::fs::read_to_string(&path).unwrap()));
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = Vec::new();
    walk(&root, &root, &mut out);
    out.sort();
    out
}

#[test]
fn dependencies_point_one_way() {
    let (found, graph) = check(&sources());
    let known: BTreeSet<(Rule, &str)> = KNOWN.iter().map(|(r, f, _)| (*r, *f)).collect();
    let new: Vec<String> = found
        .iter()
        .filter(|v| !known.contains(&(v.rule, v.file.as_str())))
        .map(|v| format!("src/{}:{}: {}", v.file, v.line, v.what))
        .collect();
    assert!(new.is_empty(), "layering violations:\n{}", new.join("\n"));
    let still: BTreeSet<(Rule, &str)> = found.iter().map(|v| (v.rule, v.file.as_str())).collect();
    let gone: Vec<String> = KNOWN
        .iter()
        .filter(|(r, f, _)| !still.contains(&(*r, *f)))
        .map(|(r, f, _)| format!("{r:?} src/{f}"))
        .collect();
    assert!(
        gone.is_empty(),
        "fixed, so remove from KNOWN:\n{}",
        gone.join("\n")
    );
    let cycles = cycles(&graph);
    assert!(
        cycles.is_empty(),
        "cycles between top-level modules: {cycles:?}"
    );
}

fn seeded(file: &str, text: &str) -> Vec<Rule> {
    check(&[(file.to_string(), text.to_string())])
        .0
        .into_iter()
        .map(|v| v.rule)
        .collect()
}

#[test]
fn each_rule_catches_a_seeded_violation() {
    assert_eq!(
        seeded("domain/x.rs", "use crate::web::views::Page;"),
        [Rule::Upward]
    );
    assert_eq!(
        seeded("config/x.rs", "let s = crate::infra::db::Database::open();"),
        [Rule::Upward]
    );
    assert_eq!(
        seeded("infra/x.rs", "use crate::app::error::AppError;"),
        [Rule::Upward]
    );
    assert_eq!(
        seeded("app/x.rs", "fn f(r: crate::web::extractors::Admin) {}"),
        [Rule::Upward]
    );
    assert_eq!(
        seeded("web/x.rs", "use crate::startup::Application;"),
        [Rule::Upward]
    );
    assert_eq!(
        seeded("app/x.rs", "use actix_web::HttpRequest;"),
        [Rule::Actix]
    );
    assert_eq!(seeded("app/x.rs", "use diesel::prelude::*;"), [Rule::Sql]);
    assert_eq!(
        seeded("web/routes/x.rs", "db.run(|c| write_tx(c, |c| f(c)))"),
        [Rule::Transaction]
    );
    assert!(seeded("app/x.rs", "db.run(|c| write_tx(c, |c| f(c)))").is_empty());
    assert_eq!(
        seeded(
            "app/x.rs",
            "#[cfg(test)]\nmod tests { use crate::web::x; use actix_web::A; }"
        ),
        [Rule::Upward],
        "tests below web may use actix, never a higher layer"
    );
    // Allowed: downward references, comments, actix in web, Diesel in infra/db.
    assert!(
        seeded(
            "web/x.rs",
            "use crate::app::error::AppError; use actix_web::App;"
        )
        .is_empty()
    );
    assert!(seeded("domain/x.rs", "// see crate::web::views").is_empty());
    assert!(seeded("infra/db/repo/x.rs", "use diesel::prelude::*;").is_empty());
    assert!(
        seeded(
            "cli.rs",
            "use crate::web::routes; use crate::startup::Core;"
        )
        .is_empty()
    );
}

#[test]
fn a_cycle_between_top_level_modules_is_found() {
    let files = [
        (
            "cli.rs".to_string(),
            "use crate::startup::Core;".to_string(),
        ),
        (
            "startup.rs".to_string(),
            "use crate::cli::Args;".to_string(),
        ),
    ];
    let (_, graph) = check(&files);
    assert_eq!(cycles(&graph), [["cli", "startup", "cli"]]);
}

#[test]
fn every_top_level_module_has_a_layer() {
    let modules: BTreeSet<String> = sources()
        .iter()
        .map(|(f, _)| module_of(f).to_string())
        .collect();
    for m in modules {
        assert!(layer(&m).is_some(), "src/{m}: add it to LAYERS");
    }
}
