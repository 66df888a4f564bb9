//! The crate's modules depend on each other in one direction only (the
//! layer diagram in the crate docs): every `crate::…` path in `src/`,
//! including names used through the re-exports at the crate root, must point
//! to the module itself, a leaf, or a module of a lower layer.

use std::collections::HashMap;
use std::path::Path;

/// Layer of each top-level module; a module may use modules of lower layers,
/// and the leaves (layer 0) may use each other.
const LAYERS: &[(&str, u32)] = &[
    ("float", 0),
    ("error", 0),
    ("checks", 0),
    ("record", 0),
    ("linalg", 0),
    ("threads", 0),
    ("memory", 0),
    ("optim", 1),
    ("model", 1),
    ("ntk", 2),
    ("theory", 3),
    ("train", 4),
    ("data", 5),
    ("testing", 6),
];

fn layer(module: &str) -> Option<u32> {
    LAYERS.iter().find(|(m, _)| *m == module).map(|(_, l)| *l)
}

/// The top-level module of a file under `src/` (`src/optim/state.rs` → `optim`).
fn module_of(path: &Path, src: &Path) -> String {
    let rel = path.strip_prefix(src).unwrap();
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy()
        .to_string();
    first.trim_end_matches(".rs").to_string()
}

/// Names re-exported at the crate root, mapped to the module they come from
/// (`pub use optim::{Nesterov, …};` → Nesterov ↦ optim).
fn root_exports(lib: &str) -> HashMap<String, String> {
    let mut map = HashMap::new();
    for statement in lib.split(';') {
        let statement = statement.trim();
        let Some(rest) = statement
            .rsplit("pub use ")
            .next()
            .filter(|_| statement.contains("pub use "))
        else {
            continue;
        };
        let Some((module, names)) = rest.split_once("::") else {
            continue;
        };
        for name in names
            .trim_matches(|c| c == '{' || c == '}' || char::is_whitespace(c))
            .split(',')
        {
            let name = name.trim();
            let name = name.rsplit("::").next().unwrap_or(name);
            if !name.is_empty() {
                map.insert(name.to_string(), module.trim().to_string());
            }
        }
    }
    map
}

/// The code of a file without its comments (doc comments may link anywhere).
fn code(text: &str) -> String {
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every module a file's code refers to through `crate::`.
fn referenced_modules(code: &str, exports: &HashMap<String, String>) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // `crate::{A, b::C, …}`: each item's first segment.
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let first = item.trim().split("::").next().unwrap_or("").trim();
                out.push(first.to_string());
            }
        } else {
            let end = rest
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            out.push(rest[..end].to_string());
        }
    }
    out.into_iter()
        .filter(|n| !n.is_empty() && n != "self")
        .map(|n| exports.get(&n).cloned().unwrap_or(n))
        .collect()
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_module_uses_a_module_above_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let exports = root_exports(&code(&std::fs::read_to_string(src.join("lib.rs")).unwrap()));
    assert!(exports.get("Nesterov").is_some_and(|m| m == "optim"), "{exports:?}");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut violations = Vec::new();
    for file in &files {
        let module = module_of(file, &src);
        if module == "lib" {
            continue;
        }
        let own = layer(&module).unwrap_or_else(|| panic!("{}: module {module} has no layer", file.display()));
        let text = std::fs::read_to_string(file).unwrap();
        for target in referenced_modules(&code(&text), &exports) {
            if target == module {
                continue;
            }
            let Some(theirs) = layer(&target) else {
                // A root item that is not a module re-export (e.g. a macro).
                continue;
            };
            if theirs > own || (theirs == own && own != 0) {
                violations.push(format!(
                    "{} ({module}, layer {own}) uses {target} (layer {theirs})",
                    file.display()
                ));
            }
        }
    }
    assert!(violations.is_empty(), "upward dependencies:\n{}", violations.join("\n"));
}

#[test]
fn the_checker_sees_paths_groups_and_root_re_exports() {
    let exports = root_exports("pub use optim::{Nesterov, Optimizer};\npub use record::History;");
    let found = referenced_modules(
        &code("use crate::{Error, Nesterov};\nlet h: crate::History = crate::train::x(); // crate::data"),
        &exports,
    );
    assert_eq!(found, ["Error", "optim", "record", "train"]);
}
