//! The layers inside the crates, held by a test (the crates' own layering is the compiler's):
//! no two files import each other, directly or round a circle, unless both are in one folder
//! (an aggregate of the domain, a family of adapters); and the domain's vocabulary imports
//! nothing above it. It reads the source: what each file defines, and what each `use` and each
//! `crate::` or `super::` path names, resolved to the file that defines the item (not to the
//! folder or crate root that re-exports it).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The vocabulary: ids, time, errors, forms and parameters, webhooks, RCML, paging.
const VOCABULARY: [&str; 8] = [
    "error", "form", "paging", "params", "rcml", "sid", "time", "webhook",
];

struct Source {
    /// Without its tests.
    text: String,
    defines: BTreeSet<String>,
}

/// The crates whose files are held to it.
const CRATES: [&str; 9] = [
    "shared/domain",
    "shared/ports",
    "shared/adapters",
    "shared/api",
    "shared/pipeline",
    "shared/runtime",
    "shared/worker",
    "local",
    "media",
];

/// A crate's files by module path (`call::apply`; the crate root is ``).
fn sources(krate: &str) -> BTreeMap<String, Source> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(krate)
        .join("src");
    let mut out = BTreeMap::new();
    let mut folders = vec![root.clone()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).expect("the source folder reads") {
            let path = entry.expect("an entry").path();
            if path.is_dir() {
                folders.push(path);
                continue;
            }
            let relative = path.strip_prefix(&root).expect("under src");
            let module = relative
                .with_extension("")
                .to_string_lossy()
                .trim_end_matches("/mod")
                .replace('/', "::");
            let module = match module.as_str() {
                "lib" => String::new(),
                // A program's own files are not part of the crate's module tree.
                "main" => continue,
                _ if module.starts_with("bin::") => continue,
                _ => module,
            };
            let text = std::fs::read_to_string(&path).expect("a source file reads");
            let text = match text.find("\n#[cfg(test)]\nmod tests") {
                Some(at) => text[..at].to_owned(),
                None => text,
            };
            let defines = definitions(&text);
            out.insert(module, Source { text, defines });
        }
    }
    out
}

/// The names a file defines at its top level (items, and `words!`/`sid_type!` types).
fn definitions(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let item = line
            .trim_start_matches("pub(crate) ")
            .trim_start_matches("pub ");
        for kind in [
            "struct ", "enum ", "fn ", "const ", "static ", "type ", "trait ",
        ] {
            if let Some(rest) = item.strip_prefix(kind) {
                names.insert(identifier(rest));
            }
        }
        if line.starts_with("words!(") || line.starts_with("sid_type!(") {
            // The type's name is the first line that is not a doc comment or an attribute.
            for next in lines.by_ref() {
                let next = next.trim();
                if !next.starts_with("///") && !next.starts_with("#[") {
                    names.insert(identifier(next));
                    break;
                }
            }
        }
    }
    names
}

fn identifier(text: &str) -> String {
    text.chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

/// The paths a `use` tree names, flattened: `a::{b, c::d}` is `a::b` and `a::c::d`.
fn flatten(tree: &str) -> Vec<Vec<String>> {
    fn parse(tokens: &[String], at: &mut usize, prefix: &[String], out: &mut Vec<Vec<String>>) {
        let mut path = prefix.to_vec();
        while *at < tokens.len() {
            match tokens[*at].as_str() {
                "{" => {
                    *at += 1;
                    while *at < tokens.len() && tokens[*at] != "}" {
                        parse(tokens, at, &path, out);
                        if tokens.get(*at).is_some_and(|t| t == ",") {
                            *at += 1;
                        }
                    }
                    *at += 1;
                    return;
                }
                "::" => *at += 1,
                "as" => *at += 2,
                "," | "}" => break,
                "*" | "self" => *at += 1,
                name => {
                    path.push(name.to_owned());
                    *at += 1;
                }
            }
        }
        out.push(path);
    }
    let mut tokens = Vec::new();
    let mut word = String::new();
    for c in tree.chars() {
        if c.is_alphanumeric() || c == '_' || c == '*' {
            word.push(c);
            continue;
        }
        if !word.is_empty() {
            tokens.push(std::mem::take(&mut word));
        }
        match c {
            '{' | '}' | ',' => tokens.push(c.to_string()),
            ':' if tokens.last().is_none_or(|t| t != "::") => tokens.push("::".into()),
            _ => {}
        }
    }
    if !word.is_empty() {
        tokens.push(word);
    }
    let mut out = Vec::new();
    parse(&tokens, &mut 0, &[], &mut out);
    out
}

/// The file that defines what `path` (after `crate::`) names.
fn resolve(path: &[String], sources: &BTreeMap<String, Source>) -> Option<String> {
    for n in (0..=path.len()).rev() {
        let module = path[..n].join("::");
        let Some(source) = sources.get(&module) else {
            continue;
        };
        let Some(item) = path.get(n) else {
            return Some(module);
        };
        if source.defines.contains(item) {
            return Some(module);
        }
        // Re-exported from one of its children.
        let inside = |name: &str| module.is_empty() || name.starts_with(&format!("{module}::"));
        let child = sources
            .iter()
            .find(|(name, s)| !name.is_empty() && inside(name) && s.defines.contains(item));
        return Some(child.map_or(module, |(name, _)| name.clone()));
    }
    None
}

fn imports(sources: &BTreeMap<String, Source>) -> BTreeMap<String, BTreeSet<String>> {
    let mut graph = BTreeMap::new();
    for (module, source) in sources {
        let mut deps = BTreeSet::new();
        let parent = module
            .rsplit_once("::")
            .map_or(String::new(), |(p, _)| p.to_owned());
        let mut paths = Vec::new();
        for (at, _) in source.text.match_indices("use ") {
            let line_start = source.text[..at].rfind('\n').map_or(0, |i| i + 1);
            let before = source.text[line_start..at].trim();
            if !(before.is_empty() || before.starts_with("pub")) {
                continue;
            }
            let end = source.text[at..]
                .find(';')
                .map_or(source.text.len(), |e| at + e);
            paths.extend(flatten(&source.text[at + 4..end]));
        }
        for (at, _) in source.text.match_indices("crate::") {
            let rest: String = source.text[at..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            paths.push(rest.split("::").map(str::to_owned).collect());
        }
        for path in paths {
            let target = match path.first().map(String::as_str) {
                Some("crate") => resolve(&path[1..], sources),
                Some("super") => {
                    let mut full: Vec<String> = parent
                        .split("::")
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .collect();
                    full.extend(path[1..].iter().cloned());
                    resolve(&full, sources)
                }
                _ => None,
            };
            if let Some(target) = target.filter(|t| t != module) {
                deps.insert(target);
            }
        }
        graph.insert(module.clone(), deps);
    }
    graph
}

/// The top-level folder a module is in (itself, at the top).
fn folder(module: &str) -> &str {
    module.split("::").next().unwrap_or(module)
}

#[test]
fn the_vocabulary_imports_nothing_above_it() {
    let sources = sources("shared/domain");
    for (module, deps) in imports(&sources) {
        if !VOCABULARY.contains(&module.as_str()) {
            continue;
        }
        let above: Vec<&String> = deps
            .iter()
            .filter(|d| !VOCABULARY.contains(&d.as_str()))
            .collect();
        assert!(above.is_empty(), "{module} imports {above:?}");
    }
}

#[test]
fn no_files_import_each_other_outside_a_folder() {
    for krate in CRATES {
        no_circle(krate, &imports(&sources(krate)));
    }
    assert!(
        imports(&sources("shared/domain")).len() > 30,
        "the files were read"
    );
}

/// `tests/run` runs no doc tests (rustdoc took 27 s to find none in ten crates), so no doc
/// comment of a library holds a Rust example, which would never run: a fenced block names what
/// it holds (```text).
#[test]
fn no_doc_comment_holds_an_example() {
    let support = Path::new(env!("CARGO_MANIFEST_DIR")).join("support");
    let mut texts: Vec<(String, String)> = CRATES
        .iter()
        .flat_map(|krate| {
            sources(krate)
                .into_iter()
                .map(move |(module, source)| (format!("{krate} `{module}`"), source.text))
        })
        .collect();
    for entry in std::fs::read_dir(&support).expect("tests/support reads") {
        let path = entry.expect("an entry").path();
        if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).expect("a source file reads");
            texts.push((path.display().to_string(), text));
        }
    }
    for (file, text) in &texts {
        let mut open = false;
        for line in text.lines() {
            let line = line.trim_start();
            let Some(doc) = line
                .strip_prefix("///")
                .or_else(|| line.strip_prefix("//!"))
            else {
                continue;
            };
            let Some(info) = doc.trim().strip_prefix("```") else {
                continue;
            };
            open = !open;
            assert!(
                !open || !is_rust(info),
                "{file}: a doc example (```{info}) that tests/run would never run"
            );
        }
    }
    assert!(texts.len() > 100, "the files were read");
    assert!(is_rust("") && is_rust("no_run") && !is_rust("text"));
}

/// Whether rustdoc takes a fenced block with this info string for Rust.
fn is_rust(info: &str) -> bool {
    let words: Vec<&str> = info
        .split([',', ' '])
        .filter(|word| !word.is_empty())
        .collect();
    words.is_empty()
        || words.iter().any(|word| {
            matches!(
                *word,
                "rust" | "ignore" | "no_run" | "should_panic" | "compile_fail" | "test_harness"
            ) || word.starts_with("edition")
        })
}

/// No file of `krate` reaches itself again by a path that leaves its folder (or that goes
/// through the crate root).
fn no_circle(krate: &str, graph: &BTreeMap<String, BTreeSet<String>>) {
    // Every file that reaches itself again by a path that leaves its folder is in a circle.
    for start in graph.keys() {
        let mut seen = BTreeSet::new();
        let mut stack: Vec<(String, Vec<String>)> = vec![(start.clone(), vec![start.clone()])];
        while let Some((module, path)) = stack.pop() {
            for dep in &graph[&module] {
                let mut next = path.clone();
                next.push(dep.clone());
                if dep == start {
                    let one_folder = next
                        .iter()
                        .all(|m| !m.is_empty() && folder(m) == folder(start));
                    assert!(one_folder, "{krate}: import circle: {}", next.join(" -> "));
                } else if seen.insert(dep.clone()) {
                    stack.push((dep.clone(), next));
                }
            }
        }
    }
}

#[test]
fn the_reader_sees_a_circle() {
    let text = |t: &str| Source {
        text: t.to_owned(),
        defines: definitions(t),
    };
    let sources: BTreeMap<String, Source> = [
        ("a".to_owned(), text("use crate::b::B;\npub struct A;\n")),
        ("b".to_owned(), text("pub struct B(crate::c::C);\n")),
        (
            "c".to_owned(),
            text("use crate::{a::A, x};\npub struct C;\n"),
        ),
    ]
    .into_iter()
    .collect();
    let graph = imports(&sources);
    assert_eq!(graph["a"], BTreeSet::from(["b".to_owned()]));
    assert_eq!(graph["b"], BTreeSet::from(["c".to_owned()]));
    assert_eq!(graph["c"], BTreeSet::from(["a".to_owned()]));
    assert_eq!(
        flatten("crate::{a::{B, c::D as E}, f, g::*}"),
        [
            vec!["crate", "a", "B"],
            vec!["crate", "a", "c", "D"],
            vec!["crate", "f"],
            vec!["crate", "g"],
        ]
    );
}
