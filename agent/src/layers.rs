//! The layering of the crate, checked: every `crate::…`, `super::…`, `self::…` and child-module
//! path in `agent/src` is resolved to the module it names, and a module may name only modules of
//! its own layer or below, never in a cycle. The layers are declared once, in the crate docs
//! (lib.rs, "Layers"); docs/architecture.md draws the same layers, with what each module
//! imports, and is checked against both.
//!
//! A small lexer (comments, strings and char literals skipped; inline `mod x { … }` tracked, so
//! `super` in a test module means the file's module) instead of a parser crate: this runs in
//! `cargo test` and costs a few milliseconds.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// A module path inside the crate, e.g. `["footprint", "recorder"]`.
type ModPath = Vec<String>;

/// One layer of the table.
#[derive(Debug, Clone)]
struct Layer {
    rank: u32,
    name: String,
}

/// The table: each unit (a module and everything under it, unless a deeper unit is listed) with
/// its layer.
struct Table {
    units: BTreeMap<String, Layer>,
}

impl Table {
    /// The table in the first ```text block after a line ending in "Layers" of `docs`: lines
    /// `RANK NAME  unit, unit, …`.
    fn parse(docs: &str) -> Result<Table, String> {
        let mut units = BTreeMap::new();
        let mut lines = docs
            .lines()
            .skip_while(|l| !l.trim_end().ends_with("Layers"));
        lines
            .find(|l| l.trim() == "```text")
            .ok_or("no ```text block after the Layers heading")?;
        for line in lines.take_while(|l| l.trim() != "```") {
            let mut words = line.split(|c: char| c.is_whitespace() || c == ',');
            let mut words = words.by_ref().filter(|w| !w.is_empty());
            let (Some(rank), Some(name)) = (words.next(), words.next()) else {
                continue;
            };
            let rank: u32 = rank
                .parse()
                .map_err(|_| format!("a layer line starts with its rank: {line:?}"))?;
            for unit in words {
                let layer = Layer {
                    rank,
                    name: name.to_string(),
                };
                if units.insert(unit.to_string(), layer).is_some() {
                    return Err(format!("`{unit}` is in two layers"));
                }
            }
        }
        if units.is_empty() {
            return Err("the Layers table is empty".into());
        }
        Ok(Table { units })
    }

    /// The unit a module path belongs to: the longest unit that is a prefix of it.
    fn unit_of(&self, path: &[String]) -> Option<String> {
        (1..=path.len())
            .rev()
            .map(|n| path[..n].join("::"))
            .find(|p| self.units.contains_key(p))
    }

    fn describe(&self, unit: &str) -> String {
        let l = &self.units[unit];
        format!("`{unit}` (layer {} {})", l.rank, l.name)
    }
}

/// One import found in a file: the module path it names (resolved from the crate root) and
/// where.
#[derive(Debug, Clone)]
struct Import {
    file: String,
    line: usize,
    target: ModPath,
    /// In code compiled for tests only (`#[cfg(test)]` modules).
    test: bool,
}

/// What a file names: its imports, and the modules it declares for tests only
/// (`#[cfg(test)] mod tests;`), whose files are test code.
struct Scan {
    imports: Vec<Import>,
    test_modules: Vec<ModPath>,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    /// `::`
    Path,
    Punct(char),
}

/// The tokens of a Rust file that matter for paths, with their line numbers.
fn lex(src: &str) -> Vec<(Tok, usize)> {
    let s: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let (mut i, mut line) = (0, 1);
    let ident_start = |c: char| c.is_alphabetic() || c == '_';
    let ident_char = |c: char| c.is_alphanumeric() || c == '_';
    while i < s.len() {
        let c = s[i];
        let next = s.get(i + 1).copied();
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c == '/' && next == Some('/') {
            while i < s.len() && s[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < s.len() {
                if s[i] == '/' && s.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if s[i] == '*' && s.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    line += usize::from(s[i] == '\n');
                    i += 1;
                }
            }
        } else if let Some(end) = raw_string_end(&s, i) {
            line += s[i..end].iter().filter(|&&c| c == '\n').count();
            i = end;
        } else if c == '"' || (c == 'b' && next == Some('"')) {
            i += if c == 'b' { 2 } else { 1 };
            while i < s.len() && s[i] != '"' {
                line += usize::from(s[i] == '\n');
                i += if s[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
        } else if c == '\'' || (c == 'b' && next == Some('\'')) {
            // A char literal ('x', '\n', '\u{7f}', b'{') or a lifetime ('a).
            let q = if c == 'b' { i + 1 } else { i };
            if s.get(q + 1) == Some(&'\\') {
                let mut j = q + 2;
                while j < s.len() && s[j] != '\'' {
                    j += 1;
                }
                i = j + 1;
            } else if s.get(q + 2) == Some(&'\'') {
                i = q + 3;
            } else {
                i = q + 1;
            }
        } else if c == 'r' && next == Some('#') && s.get(i + 2).is_some_and(|&c| ident_start(c)) {
            i += 2; // a raw identifier: the identifier follows
        } else if ident_start(c) {
            let start = i;
            while i < s.len() && ident_char(s[i]) {
                i += 1;
            }
            out.push((Tok::Ident(s[start..i].iter().collect()), line));
        } else if c.is_ascii_digit() {
            while i < s.len() && (ident_char(s[i]) || s[i] == '.') {
                i += 1;
            }
        } else if c == ':' && next == Some(':') {
            out.push((Tok::Path, line));
            i += 2;
        } else {
            if !c.is_whitespace() {
                out.push((Tok::Punct(c), line));
            }
            i += 1;
        }
    }
    out
}

/// Where a raw string literal starting at `i` (`r"…"`, `r#"…"#`, `br"…"`) ends.
fn raw_string_end(s: &[char], i: usize) -> Option<usize> {
    let mut j = i;
    if s.get(j) == Some(&'b') {
        j += 1;
    }
    if s.get(j) != Some(&'r') || (i > 0 && (s[i - 1].is_alphanumeric() || s[i - 1] == '_')) {
        return None;
    }
    j += 1;
    let hashes = s[j..].iter().take_while(|&&c| c == '#').count();
    j += hashes;
    if s.get(j) != Some(&'"') {
        return None;
    }
    j += 1;
    while j < s.len() {
        if s[j] == '"'
            && s[j + 1..]
                .iter()
                .take(hashes)
                .filter(|&&c| c == '#')
                .count()
                == hashes
        {
            return Some(j + 1 + hashes);
        }
        j += 1;
    }
    Some(s.len())
}

/// The module path of a file under `src`: `a/b.rs` and `a/b/mod.rs` are `a::b`.
fn module_of(rel: &Path) -> ModPath {
    let mut parts: Vec<String> = rel
        .with_extension("")
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts
}

/// Every crate path named in a file: `crate::…`, `super::…`, `self::…` and paths that start
/// with a child module of the current one, use-groups expanded.
fn scan(file: &str, module: &[String], src: &str, modules: &BTreeSet<ModPath>) -> Scan {
    let toks = lex(src);
    let mut out = Vec::new();
    let mut test_modules = Vec::new();
    // Inline modules open at each brace depth, and whether they are for tests: `super` inside
    // `mod tests { … }` is the file's module.
    let mut inline: Vec<(String, usize, bool)> = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    while i < toks.len() {
        match &toks[i].0 {
            Tok::Punct('{') => depth += 1,
            Tok::Punct('}') => {
                depth = depth.saturating_sub(1);
                if inline.last().is_some_and(|(_, d, _)| *d == depth) {
                    inline.pop();
                }
            }
            Tok::Ident(kw) if kw == "mod" => {
                let test = cfg_test_before(&toks, i);
                match (toks.get(i + 1), toks.get(i + 2)) {
                    (Some((Tok::Ident(name), _)), Some((Tok::Punct('{'), _))) => {
                        inline.push((name.clone(), depth, test));
                    }
                    (Some((Tok::Ident(name), _)), Some((Tok::Punct(';'), _))) if test => {
                        let mut path = module.to_vec();
                        path.extend(inline.iter().map(|(n, _, _)| n.clone()));
                        path.push(name.clone());
                        test_modules.push(path);
                    }
                    _ => {}
                }
            }
            _ => {}
        }
        let starts_path = matches!(toks[i].0, Tok::Ident(_))
            && toks.get(i + 1).map(|t| &t.0) == Some(&Tok::Path)
            && (i == 0 || toks[i - 1].0 != Tok::Path);
        if !starts_path {
            i += 1;
            continue;
        }
        let here: ModPath = module
            .iter()
            .cloned()
            .chain(inline.iter().map(|(n, _, _)| n.clone()))
            .collect();
        let test = inline.iter().any(|(_, _, test)| *test);
        let Tok::Ident(first) = &toks[i].0 else {
            unreachable!()
        };
        let line = toks[i].1;
        let (base, next) = match first.as_str() {
            "crate" => (Vec::new(), i + 2),
            "self" => (here, i + 2),
            "super" => {
                let mut base = here;
                let mut j = i;
                while toks.get(j).map(|t| &t.0) == Some(&Tok::Ident("super".into()))
                    && toks.get(j + 1).map(|t| &t.0) == Some(&Tok::Path)
                {
                    base.pop();
                    j += 2;
                }
                (base, j)
            }
            name => {
                let child: ModPath = here.iter().cloned().chain([name.to_string()]).collect();
                if !modules.contains(&child) {
                    i += 1;
                    continue;
                }
                (here, i)
            }
        };
        let mut paths = Vec::new();
        let end = use_tree(&toks, next, base, &mut paths);
        for target in paths {
            out.push(Import {
                file: file.to_string(),
                line,
                target,
                test,
            });
        }
        i = end.max(i + 1);
    }
    Scan {
        imports: out,
        test_modules,
    }
}

/// Whether the `mod` at `i` is declared `#[cfg(test)]` (a visibility may sit in between).
fn cfg_test_before(toks: &[(Tok, usize)], i: usize) -> bool {
    let mut j = i;
    while j > 0 {
        match &toks[j - 1].0 {
            Tok::Ident(w) if ["pub", "crate", "super", "self", "in"].contains(&w.as_str()) => {}
            Tok::Punct('(') | Tok::Punct(')') | Tok::Path => {}
            _ => break,
        }
        j -= 1;
    }
    let ident = |w: &str| Tok::Ident(w.to_string());
    let want = [
        Tok::Punct('#'),
        Tok::Punct('['),
        ident("cfg"),
        Tok::Punct('('),
        ident("test"),
        Tok::Punct(')'),
        Tok::Punct(']'),
    ];
    j >= want.len() && toks[j - want.len()..j].iter().map(|t| &t.0).eq(want.iter())
}

/// Reads a path or use tree at `j` under `prefix` (`a::b`, `a::{b, c::d}`, `a::*`, `self`);
/// pushes the full paths; returns the index after it.
fn use_tree(toks: &[(Tok, usize)], mut j: usize, prefix: ModPath, out: &mut Vec<ModPath>) -> usize {
    let mut path = prefix;
    loop {
        match toks.get(j).map(|t| &t.0) {
            Some(Tok::Ident(name)) => {
                if name != "self" {
                    path.push(name.clone());
                }
                j += 1;
                if toks.get(j).map(|t| &t.0) == Some(&Tok::Path) {
                    j += 1;
                    continue;
                }
                if toks.get(j).map(|t| &t.0) == Some(&Tok::Ident("as".into())) {
                    j += 2;
                }
                out.push(path);
                return j;
            }
            Some(Tok::Punct('{')) => {
                j += 1;
                while let Some(t) = toks.get(j) {
                    match t.0 {
                        Tok::Punct('}') => return j + 1,
                        Tok::Punct(',') => j += 1,
                        _ => {
                            let before = j;
                            j = use_tree(toks, j, path.clone(), out);
                            if j == before {
                                j += 1;
                            }
                        }
                    }
                }
                return j;
            }
            _ => {
                // `a::*`, or a path cut short (`a::<T>`): the path so far.
                out.push(path);
                return j;
            }
        }
    }
}

/// The crate's sources with their module paths: all but lib.rs and main.rs (they declare
/// modules and call the crate by name) and this test.
fn sources(src: &Path) -> Vec<(String, ModPath, String)> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    walk(src, &mut files);
    files.sort();
    files
        .into_iter()
        .filter_map(|p| {
            let rel = p.strip_prefix(src).unwrap().to_path_buf();
            let skip = ["lib.rs", "main.rs", "layers.rs"];
            if skip.iter().any(|s| rel == Path::new(s)) {
                return None;
            }
            let text = std::fs::read_to_string(&p).unwrap();
            Some((
                format!("agent/src/{}", rel.display()),
                module_of(&rel),
                text,
            ))
        })
        .collect()
}

/// What the check found: problems, and the unit graph (test code aside) with one import as
/// evidence per edge.
struct Check {
    problems: Vec<String>,
    edges: BTreeMap<String, BTreeMap<String, Import>>,
}

fn check(table: &Table, files: &[(String, ModPath, String)]) -> Check {
    let modules: BTreeSet<ModPath> = files
        .iter()
        .flat_map(|(_, m, _)| (1..=m.len()).map(|n| m[..n].to_vec()))
        .collect();
    let scans: Vec<Scan> = files
        .iter()
        .map(|(file, module, text)| scan(file, module, text, &modules))
        .collect();
    let test_modules: BTreeSet<ModPath> = scans
        .iter()
        .flat_map(|s| s.test_modules.iter().cloned())
        .collect();
    let mut problems = Vec::new();
    let mut edges: BTreeMap<String, BTreeMap<String, Import>> = BTreeMap::new();
    let mut used = BTreeSet::new();
    for ((file, module, _), scan) in files.iter().zip(scans) {
        let test_file = (1..=module.len()).any(|n| test_modules.contains(&module[..n]));
        let Some(from) = table.unit_of(module) else {
            problems.push(format!(
                "{file}: module `{}` is in no layer: add it to the Layers table in lib.rs",
                module.join("::")
            ));
            continue;
        };
        used.insert(from.clone());
        edges.entry(from.clone()).or_default();
        for imp in scan.imports {
            let Some(to) = table.unit_of(&imp.target) else {
                problems.push(format!(
                    "{}:{}: `crate::{}` names no module of the Layers table",
                    imp.file,
                    imp.line,
                    imp.target.join("::")
                ));
                continue;
            };
            if to == from {
                continue;
            }
            if table.units[&to].rank > table.units[&from].rank {
                problems.push(format!(
                    "{}:{}: imports `crate::{}`, but {} may not import {}, a higher layer",
                    imp.file,
                    imp.line,
                    imp.target.join("::"),
                    table.describe(&from),
                    table.describe(&to)
                ));
            }
            // Test code obeys the layers too, but is not part of the design: it draws no edge.
            if !(imp.test || test_file) {
                edges
                    .entry(from.clone())
                    .or_default()
                    .entry(to)
                    .or_insert(imp);
            }
        }
    }
    for unit in table.units.keys().filter(|u| !used.contains(*u)) {
        problems.push(format!(
            "the Layers table lists `{unit}`, which has no file under agent/src"
        ));
    }
    for cycle in cycles(&edges) {
        let mut text = format!("a cycle: {}", cycle.join(" → "));
        for pair in cycle.windows(2) {
            let imp = &edges[&pair[0]][&pair[1]];
            text += &format!(
                "\n    {}:{} imports crate::{}",
                imp.file,
                imp.line,
                imp.target.join("::")
            );
        }
        problems.push(text);
    }
    Check { problems, edges }
}

/// The cycles of a graph, one per strongly connected component of more than one node, each as a
/// closed walk (first node repeated at the end).
fn cycles(edges: &BTreeMap<String, BTreeMap<String, Import>>) -> Vec<Vec<String>> {
    // Tarjan's algorithm; the graph has a few dozen nodes, recursion is fine.
    struct Tarjan<'a> {
        edges: &'a BTreeMap<String, BTreeMap<String, Import>>,
        index: HashMap<&'a str, (usize, usize)>,
        stack: Vec<&'a str>,
        sccs: Vec<Vec<&'a str>>,
    }
    impl<'a> Tarjan<'a> {
        fn visit(&mut self, v: &'a str) {
            let n = self.index.len();
            self.index.insert(v, (n, n));
            self.stack.push(v);
            for w in self.edges.get(v).into_iter().flat_map(|m| m.keys()) {
                let w = w.as_str();
                match self.index.get(w).copied() {
                    None => {
                        self.visit(w);
                        let low = self.index[w].1.min(self.index[v].1);
                        self.index.get_mut(v).unwrap().1 = low;
                    }
                    Some((wi, _)) if self.stack.contains(&w) => {
                        let low = wi.min(self.index[v].1);
                        self.index.get_mut(v).unwrap().1 = low;
                    }
                    Some(_) => {}
                }
            }
            if self.index[v].0 == self.index[v].1 {
                let mut scc = Vec::new();
                while let Some(w) = self.stack.pop() {
                    scc.push(w);
                    if w == v {
                        break;
                    }
                }
                self.sccs.push(scc);
            }
        }
    }
    let mut t = Tarjan {
        edges,
        index: HashMap::new(),
        stack: Vec::new(),
        sccs: Vec::new(),
    };
    for v in edges.keys() {
        if !t.index.contains_key(v.as_str()) {
            t.visit(v);
        }
    }
    let mut out = Vec::new();
    for scc in t.sccs.into_iter().filter(|s| s.len() > 1) {
        // A walk that stays in the component and returns to its start.
        let inside: BTreeSet<&str> = scc.iter().copied().collect();
        let start = *inside.iter().next().unwrap();
        let mut walk = vec![start.to_string()];
        let mut seen = BTreeSet::from([start]);
        let mut at = start;
        loop {
            let next = edges[at]
                .keys()
                .map(String::as_str)
                .filter(|w| inside.contains(w))
                .find(|w| *w == start || !seen.contains(w))
                .or_else(|| {
                    edges[at]
                        .keys()
                        .map(String::as_str)
                        .find(|w| inside.contains(w))
                })
                .unwrap();
            walk.push(next.to_string());
            if next == start || !seen.insert(next) {
                break;
            }
            at = next;
        }
        out.push(walk);
    }
    out
}

/// One module as docs/architecture.md draws it.
#[derive(Debug, Default)]
struct Drawn {
    rank: u32,
    layer: String,
    imports: BTreeSet<String>,
}

/// The picture in the first ```text block after "## Layers": a line `RANK NAME` opens a layer;
/// a line indented less than 8 columns is `module  job`; `imports a b c` lines (or `imports
/// nothing`) list the last module's imports; other lines (the job's continuation, rules) are
/// for people.
fn parse_picture(doc: &str) -> Result<BTreeMap<String, Drawn>, String> {
    let mut lines = doc.lines().skip_while(|l| l.trim() != "## Layers");
    lines
        .find(|l| l.trim() == "```text")
        .ok_or("no ```text block under \"## Layers\"")?;
    let mut out: BTreeMap<String, Drawn> = BTreeMap::new();
    let mut layer: Option<(u32, String)> = None;
    let mut last: Option<String> = None;
    for line in lines.take_while(|l| l.trim() != "```") {
        let words: Vec<&str> = line.split_whitespace().collect();
        let indent = line.len() - line.trim_start().len();
        match words.as_slice() {
            [] => {}
            [rank, name] if rank.parse::<u32>().is_ok() => {
                layer = Some((rank.parse().unwrap(), name.to_string()));
            }
            ["imports", names @ ..] => {
                let module = last
                    .as_ref()
                    .ok_or(format!("imports before any module: {line:?}"))?;
                let drawn = out.get_mut(module).unwrap();
                drawn.imports.extend(
                    names
                        .iter()
                        .filter(|n| **n != "nothing")
                        .map(|n| n.to_string()),
                );
            }
            [module, ..]
                if indent < 8 && module.chars().next().is_some_and(char::is_alphabetic) =>
            {
                let (rank, name) = layer
                    .clone()
                    .ok_or(format!("a module before any layer: {line:?}"))?;
                let drawn = Drawn {
                    rank,
                    layer: name,
                    imports: BTreeSet::new(),
                };
                if out.insert(module.to_string(), drawn).is_some() {
                    return Err(format!("`{module}` is drawn twice"));
                }
                last = Some(module.to_string());
            }
            _ => {}
        }
    }
    Ok(out)
}

/// Where the picture and the code disagree.
fn compare_picture(table: &Table, check: &Check, drawn: &BTreeMap<String, Drawn>) -> Vec<String> {
    let mut problems = Vec::new();
    for (unit, layer) in &table.units {
        let Some(d) = drawn.get(unit) else {
            problems.push(format!(
                "`{unit}` (layer {} {}) is not drawn",
                layer.rank, layer.name
            ));
            continue;
        };
        if (d.rank, &d.layer) != (layer.rank, &layer.name) {
            problems.push(format!(
                "`{unit}` is drawn in layer {} {}, but lib.rs puts it in layer {} {}",
                d.rank, d.layer, layer.rank, layer.name
            ));
        }
        let actual: BTreeSet<String> = check
            .edges
            .get(unit)
            .map(|e| e.keys().cloned().collect())
            .unwrap_or_default();
        for missing in actual.difference(&d.imports) {
            let imp = &check.edges[unit][missing];
            problems.push(format!(
                "`{unit}` imports `{missing}` ({}:{} crate::{}), which its `imports` lines do not list",
                imp.file,
                imp.line,
                imp.target.join("::")
            ));
        }
        for stale in d.imports.difference(&actual) {
            problems.push(format!(
                "`{unit}` is drawn importing `{stale}`, which it does not import (any more)"
            ));
        }
    }
    for unit in drawn.keys().filter(|u| !table.units.contains_key(*u)) {
        problems.push(format!(
            "`{unit}` is drawn but is not in lib.rs's Layers table"
        ));
    }
    problems
}

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn lib_table() -> Table {
    let lib = std::fs::read_to_string(src_dir().join("lib.rs")).unwrap();
    let docs: String = lib
        .lines()
        .filter_map(|l| l.strip_prefix("//!"))
        .map(|l| format!("{}\n", l.strip_prefix(' ').unwrap_or(l)))
        .collect();
    Table::parse(&docs).unwrap_or_else(|e| panic!("lib.rs: {e}"))
}

#[test]
fn every_import_points_down_and_no_module_is_in_a_cycle() {
    let table = lib_table();
    let result = check(&table, &sources(&src_dir()));
    assert!(
        result.problems.is_empty(),
        "the layering of agent/src (lib.rs, Layers) is broken:\n{}",
        result.problems.join("\n")
    );
}

#[test]
fn architecture_md_draws_the_layers_and_imports_as_they_are() {
    let table = lib_table();
    let result = check(&table, &sources(&src_dir()));
    let doc = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/architecture.md");
    let doc = std::fs::read_to_string(doc).unwrap();
    let drawn = parse_picture(&doc).unwrap_or_else(|e| panic!("docs/architecture.md: {e}"));
    let problems = compare_picture(&table, &result, &drawn);
    assert!(
        problems.is_empty(),
        "docs/architecture.md (## Layers) no longer draws agent/src as it is:\n{}",
        problems.join("\n")
    );
}

/// `cargo test -p jobarchive --lib layers::graph -- --ignored --nocapture` prints the graph.
#[test]
#[ignore]
fn graph() {
    let table = lib_table();
    let result = check(&table, &sources(&src_dir()));
    for (from, to) in &result.edges {
        let to: Vec<&str> = to.keys().map(String::as_str).collect();
        println!("{from} -> {}", to.join(" "));
    }
    for p in &result.problems {
        println!("PROBLEM {p}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(list: &[(&str, &str)]) -> Vec<(String, ModPath, String)> {
        list.iter()
            .map(|(path, text)| {
                let rel = Path::new(path);
                (path.to_string(), module_of(rel), text.to_string())
            })
            .collect()
    }

    fn table(text: &str) -> Table {
        Table::parse(&format!("## Layers\n```text\n{text}\n```\n")).unwrap()
    }

    #[test]
    fn an_import_of_a_higher_layer_is_named_with_its_file_and_line() {
        let t = table("2 tasks  app\n1 model  store\n0 base  clock");
        let found = check(
            &t,
            &files(&[
                ("app.rs", "use crate::store::Store;\nuse crate::clock;"),
                ("store/mod.rs", "mod s3;\nuse crate::clock::now;"),
                // The bad one: a store backend reaching up for the app.
                ("store/s3.rs", "// crate::app in a comment is not an import\n\nfn f() { let s = \"crate::app\"; crate::app::run(b'{'); }"),
                ("clock.rs", "pub fn now() {}"),
            ]),
        );
        assert_eq!(found.problems.len(), 2, "{:?}", found.problems);
        let p = &found.problems[0];
        assert!(
            p.starts_with("store/s3.rs:3: imports `crate::app::run`"),
            "{p}"
        );
        assert!(
            p.contains("`store` (layer 1 model) may not import `app` (layer 2 tasks)"),
            "{p}"
        );
        // And since the app imports the store, the two are now a cycle.
        assert!(found.problems[1].starts_with("a cycle: app → store → app"));
    }

    #[test]
    fn a_cycle_within_a_layer_is_named_with_its_imports() {
        let t = table("1 model  meta contract\n0 base  clock");
        let found = check(
            &t,
            &files(&[
                (
                    "meta/mod.rs",
                    "use crate::{contract::{self, Key}, clock::now};",
                ),
                ("contract.rs", "fn f() { super::meta::path::guess(); }"),
                ("meta/path.rs", "pub fn guess() {}"),
                ("clock.rs", ""),
            ]),
        );
        assert_eq!(found.problems.len(), 1, "{:?}", found.problems);
        let p = &found.problems[0];
        assert!(p.starts_with("a cycle: contract → meta → contract"), "{p}");
        assert!(
            p.contains("contract.rs:1 imports crate::meta::path::guess"),
            "{p}"
        );
        assert!(p.contains("meta/mod.rs:1 imports crate::contract"), "{p}");
    }

    #[test]
    fn super_in_a_test_module_and_child_paths_resolve_to_their_modules() {
        let t = table("1 model  footprint\n1 task  footprint::recorder\n0 base  clock");
        let found = check(
            &t,
            &files(&[
                // A child module named without a prefix, from the parent: an import of it.
                ("footprint/mod.rs", "mod recorder;\npub use recorder::Recorder;"),
                (
                    "footprint/recorder.rs",
                    "use super::Footprint;\n#[cfg(test)]\nmod tests {\n    use super::*;\n    use super::super::report;\n}",
                ),
                ("clock.rs", ""),
            ]),
        );
        let edges: Vec<(&str, Vec<&str>)> = found
            .edges
            .iter()
            .map(|(k, v)| (k.as_str(), v.keys().map(String::as_str).collect()))
            .collect();
        assert_eq!(
            edges,
            [
                ("clock", vec![]),
                ("footprint", vec!["footprint::recorder"]),
                ("footprint::recorder", vec!["footprint"]),
            ]
        );
        assert_eq!(found.problems.len(), 1, "{:?}", found.problems);
        assert!(
            found.problems[0].starts_with("a cycle: footprint → footprint::recorder → footprint")
        );
    }

    #[test]
    fn test_code_draws_no_edge_but_may_not_point_up_either() {
        let t = table("2 app  app\n1 model  store parse\n0 base  clock");
        let found = check(
            &t,
            &files(&[
                ("app.rs", ""),
                ("clock.rs", ""),
                ("parse.rs", ""),
                (
                    "store/mod.rs",
                    "use crate::clock::now;\n#[cfg(test)]\nmod tests;\n#[cfg(test)]\npub(crate) mod seeds {\n    use crate::parse::x;\n}",
                ),
                ("store/tests.rs", "use crate::parse::Record;\nuse crate::app::App;"),
            ]),
        );
        let edges: Vec<&str> = found.edges["store"].keys().map(String::as_str).collect();
        assert_eq!(edges, ["clock"], "parse is imported by test code only");
        assert_eq!(found.problems.len(), 1, "{:?}", found.problems);
        assert!(found.problems[0].starts_with("store/tests.rs:2: imports `crate::app::App`"));
    }

    #[test]
    fn the_picture_is_read_and_compared_with_the_code() {
        let t = table("1 model  store\n0 base  clock retry");
        let found = check(
            &t,
            &files(&[
                ("store.rs", "use crate::{clock, retry};"),
                ("clock.rs", ""),
                ("retry.rs", ""),
            ]),
        );
        let doc = "## Layers\n```text\n1 model\n    store    where objects land,\n             on two lines\n             imports clock\n---\n0 base\n    clock    now\n             imports nothing\n    retry    waits\n             imports clock\n```\n";
        let drawn = parse_picture(doc).unwrap();
        assert_eq!(drawn["store"].layer, "model");
        assert_eq!(
            compare_picture(&t, &found, &drawn),
            [
                "`retry` is drawn importing `clock`, which it does not import (any more)",
                "`store` imports `retry` (store.rs:1 crate::retry), which its `imports` lines do not list",
            ]
        );
    }

    #[test]
    fn a_module_outside_the_table_and_a_stale_entry_are_reported() {
        let t = table("0 base  clock gone");
        let found = check(&t, &files(&[("clock.rs", ""), ("new.rs", "")]));
        assert_eq!(
            found.problems,
            [
                "new.rs: module `new` is in no layer: add it to the Layers table in lib.rs",
                "the Layers table lists `gone`, which has no file under agent/src",
            ]
        );
    }
}
