//! The node's modules form layers whose arrows only point down.
//!
//! This test reads `src/` and finds every module each file refers to
//! (`crate::…`, `super::…` and child modules), then checks two rules:
//!
//! 1. a top-level module only uses modules of lower layers (or its own), in
//!    the order of [`LAYERS`], which `docs/architecture.md` draws;
//! 2. no file's module uses one that, directly or through others, uses it
//!    back. A module may use its own parent freely: the parent is the
//!    namespace whose shared types (errors, limits) its children use.
//!
//! It reads source text, not the compiler's resolution, so it knows the
//! handful of spellings this crate uses; comments and inline `mod tests`
//! are ignored.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Top-level modules, bottom layer first. Modules of one layer may not use
/// each other.
const LAYERS: &[&[&str]] = &[
    &["store"],
    &["persist"],
    &["config"],
    &["runtime"],
    &["clients"],
    &["stats"],
    &["cluster"],
    &["replication"],
    &["state"],
    &["figures"],
    &["cmd"],
    &["connection", "metrics"],
    &["server"],
    &["test_util"],
];

type Module = Vec<String>;

/// Every source file of the library, by module path.
fn modules(src: &Path) -> BTreeMap<Module, PathBuf> {
    let mut found = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("src is readable") {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let relative = path.strip_prefix(src).expect("under src");
            let mut module: Module = relative
                .iter()
                .map(|part| part.to_string_lossy().trim_end_matches(".rs").to_string())
                .collect();
            if matches!(module.last().map(String::as_str), Some("mod" | "lib")) {
                module.pop();
            }
            if module == ["main"] || module.first().is_some_and(|m| m == "bin") {
                continue; // the binaries, which use the library from outside
            }
            found.insert(module, path);
        }
    }
    found
}

/// The text without comments (doc links are not uses) and without an
/// inline test module (tests may set up whatever they need).
fn code_of(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests {") {
        Some(at) => &text[..at],
        None => text,
    };
    text.lines()
        .map(|line| match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Expands `{a, b::{c, d}}` or `a::b` at the start of `text` into paths.
fn paths_at(text: &str) -> Vec<Vec<String>> {
    let text = text.trim_start();
    if let Some(rest) = text.strip_prefix('{') {
        let mut depth = 0;
        let mut parts = Vec::new();
        let mut start = 0;
        for (i, c) in rest.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => {
                    parts.push(&rest[start..i]);
                    break;
                }
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    parts.push(&rest[start..i]);
                    start = i + 1;
                }
                _ => {}
            }
        }
        return parts.into_iter().flat_map(paths_at).collect();
    }
    let mut path = Vec::new();
    let mut rest = text;
    loop {
        let end = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        if end == 0 {
            break;
        }
        path.push(rest[..end].to_string());
        match rest[end..].strip_prefix("::") {
            Some(next) if next.starts_with('{') => {
                return paths_at(next)
                    .into_iter()
                    .map(|tail| path.iter().cloned().chain(tail).collect())
                    .collect();
            }
            Some(next) => rest = next,
            None => break,
        }
    }
    vec![path]
}

/// The longest prefix of `path` that names a module file.
fn resolve(known: &BTreeMap<Module, PathBuf>, path: &[String]) -> Module {
    (0..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|prefix| known.contains_key(prefix))
        .unwrap_or_default()
}

/// The modules `module`'s file refers to, itself and the crate root left out.
fn uses(known: &BTreeMap<Module, PathBuf>, module: &Module, file: &Path) -> BTreeSet<Module> {
    let code = code_of(&std::fs::read_to_string(file).expect("readable source"));
    let is_dir_module = file.ends_with("mod.rs");
    // `super` of a file `a/b.rs` is `a`; of `a/b/mod.rs` it is also `a`.
    let parent: Module = module[..module.len().saturating_sub(1)].to_vec();
    let children: Vec<String> = code
        .lines()
        .filter_map(|line| {
            let line = line
                .trim()
                .trim_start_matches("pub ")
                .trim_start_matches("pub(crate) ");
            let name = line.strip_prefix("mod ")?.strip_suffix(';')?;
            Some(name.to_string())
        })
        .collect();
    let mut found = BTreeSet::new();
    let mut add = |path: Vec<String>| {
        let target = resolve(known, &path);
        if !target.is_empty() && target != *module {
            found.insert(target);
        }
    };
    for (at, _) in code.match_indices("crate::") {
        for path in paths_at(&code[at + "crate::".len()..]) {
            add(path);
        }
    }
    for (at, _) in code.match_indices("super::") {
        let before = &code[..at];
        if before.ends_with("super::") {
            continue; // counted from the first `super::`
        }
        let mut base = parent.clone();
        let mut rest = &code[at + "super::".len()..];
        while let Some(next) = rest.strip_prefix("super::") {
            base.pop();
            rest = next;
        }
        for path in paths_at(rest) {
            add(base.iter().cloned().chain(path).collect());
        }
    }
    for child in &children {
        let mut child_module = module.clone();
        child_module.push(child.clone());
        if is_dir_module || module.is_empty() {
            for pattern in [format!("{child}::"), format!("self::{child}::")] {
                for (at, _) in code.match_indices(&pattern) {
                    let before = code[..at].chars().next_back();
                    if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                        continue;
                    }
                    let tail = paths_at(&code[at + pattern.len()..]);
                    for path in tail {
                        add(child_module.iter().cloned().chain(path).collect());
                    }
                }
            }
        }
    }
    found
}

fn graph() -> BTreeMap<Module, BTreeSet<Module>> {
    graph_of(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"))
}

fn graph_of(src: &Path) -> BTreeMap<Module, BTreeSet<Module>> {
    let known = modules(src);
    known
        .iter()
        .filter(|(module, _)| !module.is_empty())
        .map(|(module, file)| (module.clone(), uses(&known, module, file)))
        .collect()
}

fn layer_of(module: &Module) -> Option<usize> {
    LAYERS
        .iter()
        .position(|layer| layer.contains(&module[0].as_str()))
}

fn name(module: &Module) -> String {
    module.join("::")
}

#[test]
fn every_top_level_module_has_a_layer() {
    for module in graph().keys() {
        assert!(
            layer_of(module).is_some(),
            "{} is in no layer of LAYERS",
            name(module)
        );
    }
}

#[test]
fn arrows_point_down() {
    let mut wrong = Vec::new();
    for (module, uses) in graph() {
        let from = layer_of(&module);
        for used in uses {
            let to = layer_of(&used);
            if module[0] != used[0] && to >= from {
                wrong.push(format!("{} uses {}", name(&module), name(&used)));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "upward or sideways uses:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn no_module_uses_one_that_uses_it_back() {
    assert_acyclic(&graph());
}

#[test]
fn neither_do_the_other_crates_modules() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for krate in ["keycafe-core", "keycafe-client", "coordinate-server"] {
        let graph = graph_of(&workspace.join(krate).join("src"));
        let uses: usize = graph.values().map(BTreeSet::len).sum();
        assert!(
            uses > 10,
            "{krate}: only {uses} uses read; is the reader broken?"
        );
        assert_acyclic(&graph);
    }
}

fn assert_acyclic(graph: &BTreeMap<Module, BTreeSet<Module>>) {
    // Depth-first search for a cycle, reporting the first one found.
    fn visit(
        graph: &BTreeMap<Module, BTreeSet<Module>>,
        module: &Module,
        path: &mut Vec<Module>,
        done: &mut BTreeSet<Module>,
    ) -> Option<Vec<Module>> {
        if let Some(start) = path.iter().position(|m| m == module) {
            let mut cycle = path[start..].to_vec();
            cycle.push(module.clone());
            return Some(cycle);
        }
        if done.contains(module) {
            return None;
        }
        path.push(module.clone());
        let parents = |used: &&Module| !module.starts_with(used);
        for used in graph.get(module).into_iter().flatten().filter(parents) {
            if let Some(cycle) = visit(graph, used, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(module.clone());
        None
    }
    let mut done = BTreeSet::new();
    for module in graph.keys() {
        if let Some(cycle) = visit(graph, module, &mut Vec::new(), &mut done) {
            let names: Vec<String> = cycle.iter().map(name).collect();
            panic!("modules that use each other: {}", names.join(" -> "));
        }
    }
}

#[test]
fn the_reader_sees_what_it_should() {
    // The parser itself: a grouped use, `super`, and a child module.
    let graph = graph();
    let store: Module = vec!["store".into()];
    let shard: Module = vec!["store".into(), "shard".into()];
    assert!(graph[&store].contains(&shard), "store uses store::shard");
    let server: Module = vec!["server".into()];
    assert!(
        graph[&server].contains(&vec!["connection".to_string()]),
        "server uses connection"
    );
}
