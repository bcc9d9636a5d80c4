//! The architecture, enforced: reads the library's source files and fails when they break
//! ARCHITECTURE.md's invariants (the way rust-analyzer's tidy tests enforce theirs).
//!
//! - The library's folders are its layers, lowest first: `os`, `protocol`, `segment`,
//!   `objects`. A file may name its own layer and the layers below it, never one above.
//! - The crate-root vocabulary (`error`, `kind`, `sync`) may be named by every layer, and
//!   names no layer itself.
//! - The crate-root glue (`lib.rs`, `fuzzing.rs`, `layout_check.rs`) may name anything;
//!   no layer names it.
//! - Only the OS layer calls the operating system: `rustix` and `libc` appear nowhere else.
//! - No cycle between the library's modules (a folder module such as `protocol::ring`
//!   counts as one).
//! - No source file is longer than 600 lines.
//!
//! Comments are skipped: a doc link to a higher layer explains, it does not depend.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// The layers, lowest first.
const LAYERS: [&str; 4] = ["os", "protocol", "segment", "objects"];
/// Crate-root modules every layer may use; they use no layer.
const VOCABULARY: [&str; 3] = ["error", "kind", "sync"];
/// Crate-root files above every layer.
const GLUE: [&str; 3] = ["lib", "fuzzing", "layout_check"];
const MAX_LINES: usize = 600;

/// One library source file.
struct Source {
    /// Path relative to `src`, e.g. `protocol/ring/mod.rs`.
    rel: String,
    /// Its module path, e.g. `["protocol", "ring"]`; `[]` for `lib.rs`.
    module: Vec<String>,
    /// The text with comments blanked out.
    code: String,
    lines: usize,
}

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            collect(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

fn sources() -> Vec<Source> {
    let root = src_dir();
    let mut paths = Vec::new();
    collect(&root, &mut paths);
    paths
        .into_iter()
        .map(|p| {
            let rel = p
                .strip_prefix(&root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let mut module: Vec<String> = rel
                .trim_end_matches(".rs")
                .split('/')
                .map(str::to_owned)
                .collect();
            if module.last().is_some_and(|m| m == "mod" || m == "lib") {
                module.pop();
            }
            let text = fs::read_to_string(&p).unwrap();
            Source {
                rel,
                module,
                code: strip_comments(&text),
                lines: text.lines().count(),
            }
        })
        .collect()
}

/// The text with `//` comments (doc comments included) and `/* */` comments blanked out,
/// string and char literals kept intact (so a `//` inside a string is not a comment).
fn strip_comments(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'/' && b.get(i + 1) == Some(&b'/') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
            i += 2;
            while i < b.len() && !(b[i] == b'*' && b.get(i + 1) == Some(&b'/')) {
                i += 1;
            }
            i += 2;
            out.push(' ');
        } else if b[i] == b'\'' && char_literal_len(&text[i..]).is_some() {
            let n = char_literal_len(&text[i..]).unwrap();
            out.push_str(&text[i..i + n]);
            i += n;
        } else if b[i] == b'"' {
            let start = i;
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str(&text[start..i.min(b.len())]);
        } else {
            let c = text[i..].chars().next().unwrap();
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// The length of the char literal `rest` starts with (`'x'`, `'\n'`, `'"'`), or `None`
/// when the quote opens a lifetime.
fn char_literal_len(rest: &str) -> Option<usize> {
    let mut chars = rest.char_indices().skip(1);
    let (_, c) = chars.next()?;
    if c == '\\' {
        // Skip the escaped character itself, so `'\''` is one literal.
        return rest.get(3..)?.find('\'').map(|k| k + 4);
    }
    match chars.next()? {
        (k, '\'') => Some(k + 1),
        _ => None,
    }
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// Every crate path named in `code`, resolved from the crate root (`crate::a::b`,
/// `super::x`, and each item of a `crate::{a, b::c}` group), as its segments.
fn crate_paths(code: &str, module: &[String]) -> Vec<Vec<String>> {
    let b = code.as_bytes();
    let mut found = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let starts_word = i == 0 || !(is_ident(b[i - 1]) || b[i - 1] == b':' || b[i - 1] == b'$');
        let (base, len) = if starts_word && b[i..].starts_with(b"crate::") {
            (Vec::new(), "crate::".len())
        } else if starts_word && b[i..].starts_with(b"super::") {
            // Each `super` is one module up (a `mod.rs`'s module is its folder).
            let mut base: Vec<String> = module.to_vec();
            let mut j = i;
            while b[j..].starts_with(b"super::") {
                base.pop();
                j += "super::".len();
            }
            (base, j - i)
        } else {
            i += 1;
            continue;
        };
        let rest = &code[i + len..];
        for tail in path_tails(rest) {
            let mut p = base.clone();
            p.extend(tail);
            found.push(p);
        }
        i += len;
    }
    found
}

/// The paths that follow `crate::` in `rest`: one, or one per item of a `{...}` group.
fn path_tails(rest: &str) -> Vec<Vec<String>> {
    let rest = rest.trim_start();
    if let Some(group) = rest.strip_prefix('{') {
        let mut depth = 0;
        let mut end = group.len();
        for (k, c) in group.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => {
                    end = k;
                    break;
                }
                '}' => depth -= 1,
                _ => {}
            }
        }
        let inner = &group[..end];
        let mut items = Vec::new();
        let mut depth = 0;
        let mut start = 0;
        for (k, c) in inner.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    items.push(&inner[start..k]);
                    start = k + 1;
                }
                _ => {}
            }
        }
        items.push(&inner[start..]);
        return items
            .into_iter()
            .filter(|s| !s.trim().is_empty())
            .flat_map(path_tails)
            .collect();
    }
    let mut segs = Vec::new();
    let mut s = rest;
    loop {
        let n = s.bytes().take_while(|&c| is_ident(c)).count();
        if n == 0 {
            break;
        }
        segs.push(s[..n].to_owned());
        s = &s[n..];
        match s.strip_prefix("::") {
            Some(r) if r.starts_with('{') => {
                return path_tails(r)
                    .into_iter()
                    .map(|t| segs.iter().cloned().chain(t).collect())
                    .collect();
            }
            Some(r) => s = r,
            None => break,
        }
    }
    vec![segs]
}

/// The crate root's re-exports (`pub use a::b::{X, Y}` in lib.rs): item name → module path.
fn root_reexports(lib: &Source) -> BTreeMap<String, Vec<String>> {
    let mut map = BTreeMap::new();
    for stmt in lib.code.split(';') {
        let stmt = stmt.trim();
        let Some(path) = stmt
            .strip_prefix("pub use ")
            .or_else(|| stmt.strip_prefix("pub(crate) use "))
        else {
            continue;
        };
        for full in path_tails(path) {
            if let Some((item, module)) = full.split_last() {
                map.insert(item.clone(), module.to_vec());
            }
        }
    }
    map
}

/// What a crate-root name is, for the rules.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Place {
    Layer(usize),
    Vocabulary,
    Glue,
}

fn place_of_top(top: &str) -> Option<Place> {
    if let Some(rank) = LAYERS.iter().position(|l| *l == top) {
        Some(Place::Layer(rank))
    } else if VOCABULARY.contains(&top) {
        Some(Place::Vocabulary)
    } else if GLUE.contains(&top) {
        Some(Place::Glue)
    } else {
        None
    }
}

/// The module path a crate path lands in (resolving root re-exports such as
/// `crate::Error` → `error`), or `None` for a name the test does not know.
fn resolve(path: &[String], reexports: &BTreeMap<String, Vec<String>>) -> Option<Vec<String>> {
    let top = path.first()?;
    if place_of_top(top).is_some() {
        return Some(path.to_vec());
    }
    // An item of the crate root: a re-export, or something lib.rs defines itself.
    match reexports.get(top) {
        Some(module) => Some(module.clone()),
        None => Some(vec!["lib".to_owned()]),
    }
}

/// The node of the module graph a path belongs to: a vocabulary module, or a layer and the
/// module under it (`protocol::ring`, whatever file of the folder).
fn node(path: &[String]) -> String {
    match place_of_top(path.first().map_or("lib", |s| s.as_str())) {
        Some(Place::Layer(_)) if path.len() >= 2 => format!("{}::{}", path[0], path[1]),
        _ => path.first().cloned().unwrap_or_else(|| "lib".to_owned()),
    }
}

#[test]
fn layers_import_downward_only_and_only_the_os_layer_calls_the_os() {
    let errors = check(&sources());
    assert!(
        errors.is_empty(),
        "ARCHITECTURE.md's invariants are broken:\n  {}",
        errors.join("\n  ")
    );
}

/// Every broken invariant in `sources`, one message each.
fn check(sources: &[Source]) -> Vec<String> {
    let reexports = sources
        .iter()
        .find(|s| s.rel == "lib.rs")
        .map(root_reexports)
        .unwrap_or_default();
    let mut errors = Vec::new();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();

    for s in sources {
        let top = s.module.first().map_or("lib", |m| m.as_str());
        let Some(own) = place_of_top(top) else {
            errors.push(format!(
                "{}: a file outside the layer folders ({}) and the crate-root files ({}); \
                 put it in the layer it belongs to",
                s.rel,
                LAYERS.join(", "),
                [&VOCABULARY[..], &GLUE[..]].concat().join(", ")
            ));
            continue;
        };
        if !matches!(own, Place::Layer(0)) {
            for forbidden in ["rustix::", "libc::"] {
                if s.code.contains(forbidden) {
                    errors.push(format!(
                        "{}: calls `{}` outside the OS layer; put the call in `os` and use it from there",
                        s.rel,
                        forbidden.trim_end_matches("::")
                    ));
                }
            }
        }
        let from = node(&s.module);
        for path in crate_paths(&s.code, &s.module) {
            let Some(target) = resolve(&path, &reexports) else {
                continue;
            };
            let to = node(&target);
            let target_place = place_of_top(target.first().map_or("lib", |t| t.as_str()));
            let allowed = match (own, target_place) {
                (Place::Glue, _) => true,
                (_, Some(Place::Glue)) => false,
                (Place::Vocabulary, Some(Place::Vocabulary)) => true,
                (Place::Vocabulary, _) => false,
                (Place::Layer(_), Some(Place::Vocabulary)) => true,
                (Place::Layer(a), Some(Place::Layer(b))) => b <= a,
                (Place::Layer(_), None) => false,
            };
            if !allowed {
                errors.push(format!(
                    "{}: names `crate::{}`, which is {}; a file {} may name only {}",
                    s.rel,
                    path.join("::"),
                    describe(target_place),
                    describe(Some(own)),
                    allowed_for(own),
                ));
            }
            if from != to && own != Place::Glue && target_place != Some(Place::Glue) {
                graph.entry(from.clone()).or_default().insert(to);
            }
        }
        if s.lines > MAX_LINES {
            errors.push(format!(
                "{}: {} lines (at most {MAX_LINES}); split it, or move its tests beside it \
                 (`name/tests.rs`)",
                s.rel, s.lines
            ));
        }
    }

    if let Some(cycle) = find_cycle(&graph) {
        errors.push(format!("a module cycle: {}", cycle.join(" → ")));
    }
    errors
}

fn describe(p: Option<Place>) -> String {
    match p {
        Some(Place::Layer(r)) => format!("in the `{}` layer", LAYERS[r]),
        Some(Place::Vocabulary) => "in the crate-root vocabulary".to_owned(),
        Some(Place::Glue) => "in the crate-root glue".to_owned(),
        None => "unknown".to_owned(),
    }
}

fn allowed_for(p: Place) -> String {
    match p {
        Place::Layer(r) => format!(
            "the layers {} and the vocabulary ({})",
            LAYERS[..=r].join(", "),
            VOCABULARY.join(", ")
        ),
        Place::Vocabulary => format!("the vocabulary ({})", VOCABULARY.join(", ")),
        Place::Glue => "anything".to_owned(),
    }
}

/// A cycle in the graph, as the nodes along it, if there is one.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Active,
        Done,
    }
    fn visit(
        n: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        marks: &mut BTreeMap<String, Mark>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match marks.get(n) {
            Some(Mark::Done) => return None,
            Some(Mark::Active) => {
                let at = stack.iter().position(|s| s == n).unwrap();
                let mut cycle = stack[at..].to_vec();
                cycle.push(n.to_owned());
                return Some(cycle);
            }
            None => {}
        }
        marks.insert(n.to_owned(), Mark::Active);
        stack.push(n.to_owned());
        for next in graph.get(n).into_iter().flatten() {
            if let Some(c) = visit(next, graph, marks, stack) {
                return Some(c);
            }
        }
        stack.pop();
        marks.insert(n.to_owned(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    for n in graph.keys() {
        if let Some(c) = visit(n, graph, &mut marks, &mut Vec::new()) {
            return Some(c);
        }
    }
    None
}

// ----- the checker checks itself: each rule must be able to fail -----

fn src(module: &[&str], text: &str) -> (Vec<String>, String) {
    (
        module.iter().map(|s| s.to_string()).collect(),
        strip_comments(text),
    )
}

#[test]
fn paths_are_found_in_uses_groups_and_expressions_but_not_comments() {
    let (m, code) = src(
        &["protocol", "ring"],
        "use crate::os::wait::{futex_wait, Deadline};\n\
         use crate::{error::Error, sync::{AtomicU64, Ordering}};\n\
         /// see [`crate::objects::event`]\n\
         // crate::segment::named\n\
         fn f() { crate::os::sys::pid(); let s = \"// not a comment\"; super::padded::x(); }",
    );
    let paths: Vec<String> = crate_paths(&code, &m)
        .into_iter()
        .map(|p| p.join("::"))
        .collect();
    assert_eq!(
        paths,
        [
            "os::wait::futex_wait",
            "os::wait::Deadline",
            "error::Error",
            "sync::AtomicU64",
            "sync::Ordering",
            "os::sys::pid",
            "protocol::padded::x",
        ]
    );
}

#[test]
fn super_resolves_from_files_and_from_mod_rs() {
    let (m, code) = src(&["objects", "channel"], "use super::event::Event;");
    assert_eq!(
        crate_paths(&code, &m)[0].join("::"),
        "objects::event::Event"
    );
    let (m, code) = src(&["objects", "channel", "publisher"], "use super::Channel;");
    assert_eq!(
        crate_paths(&code, &m)[0].join("::"),
        "objects::channel::Channel"
    );
    let (m, code) = src(&["os", "sys"], "use super::super::objects::X;");
    assert_eq!(crate_paths(&code, &m)[0].join("::"), "objects::X");
}

#[test]
fn cycles_are_found() {
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    g.entry("a".into()).or_default().insert("b".into());
    g.entry("b".into()).or_default().insert("c".into());
    assert_eq!(find_cycle(&g), None);
    g.entry("c".into()).or_default().insert("a".into());
    assert_eq!(find_cycle(&g).unwrap(), ["a", "b", "c", "a"]);
}

fn source(rel: &str, text: &str) -> Source {
    let mut module: Vec<String> = rel
        .trim_end_matches(".rs")
        .split('/')
        .map(str::to_owned)
        .collect();
    if module.last().is_some_and(|m| m == "mod" || m == "lib") {
        module.pop();
    }
    Source {
        rel: rel.to_owned(),
        module,
        code: strip_comments(text),
        lines: text.lines().count(),
    }
}

#[test]
fn each_rule_can_fail() {
    let lib = source(
        "lib.rs",
        "pub use objects::event::{Event, EventMode};\npub use error::Error;",
    );
    let ok = [
        source(
            "os/sys.rs",
            "use crate::error::Result; fn f() { rustix::fs::open(); }",
        ),
        source(
            "protocol/ring/mod.rs",
            "use crate::os::wait::Deadline; use super::layout::X;",
        ),
        source(
            "objects/event.rs",
            "use crate::segment::named::Segment; use crate::Error;",
        ),
        source("error.rs", "use crate::kind::Kind;"),
    ];
    let with = |extra: Source| {
        let mut all = vec![source("lib.rs", &lib.code)];
        all.extend(ok.iter().map(|s| source(&s.rel, &s.code)));
        all.push(extra);
        check(&all)
    };
    assert_eq!(check(&[source("lib.rs", &lib.code)]), Vec::<String>::new());
    assert_eq!(
        with(source("segment/x.rs", "use crate::protocol::ring;")),
        Vec::<String>::new()
    );

    let upward = with(source(
        "protocol/seqlock.rs",
        "fn f() { crate::segment::liveness::slot_alive(); }",
    ));
    assert!(
        upward[0].contains("names `crate::segment::liveness::slot_alive`"),
        "{upward:?}"
    );
    let via_root = with(source(
        "segment/header.rs",
        "fn f() -> crate::Event { todo!() }",
    ));
    assert!(
        via_root[0].contains("in the `objects` layer"),
        "{via_root:?}"
    );
    let vocabulary_up = with(source("kind.rs", "use crate::segment::header::X;"));
    assert_eq!(vocabulary_up.len(), 1, "{vocabulary_up:?}");
    let glue = with(source("objects/catalog.rs", "use crate::fuzzing::header;"));
    assert!(glue[0].contains("crate-root glue"), "{glue:?}");
    let syscall = with(source("segment/named.rs", "fn f() { libc::getpid(); }"));
    assert!(
        syscall[0].contains("calls `libc` outside the OS layer"),
        "{syscall:?}"
    );
    let stray = with(source("util.rs", ""));
    assert!(stray[0].contains("outside the layer folders"), "{stray:?}");
    let long = with(source("objects/duplex.rs", &"\n".repeat(MAX_LINES + 1)));
    assert!(long[0].contains("lines (at most 600)"), "{long:?}");
    let mut cyclic = vec![
        source("objects/a.rs", "use crate::objects::b::X;"),
        source("objects/b.rs", "use super::a::Y;"),
    ];
    cyclic.push(source("lib.rs", ""));
    let cycle = check(&cyclic);
    assert!(
        cycle[0].starts_with("a module cycle: objects::a → objects::b → objects::a"),
        "{cycle:?}"
    );
}

#[test]
fn char_literals_and_lifetimes_do_not_open_strings() {
    let code = strip_comments("fn f<'a>(x: &'a u8) { let q = '\"'; let e = '\\''; } // crate::x");
    assert!(
        code.contains("'\"'") && !code.contains("crate::x"),
        "{code}"
    );
}
