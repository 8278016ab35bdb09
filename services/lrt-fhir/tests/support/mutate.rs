//! A deterministic (seeded) mutation corpus built from real FHIR Bundles, for the fuzz-style
//! tests of the FHIR reader (`tests/fuzz_reader.rs`) and of `lrt evaluate --bundle`.
//!
//! Each mutant is one Bundle with one change: truncation, an empty array, an unknown member of
//! every JSON type, a duplicate key, a NUL character (escaped and raw), deep nesting, huge or
//! odd numbers, a value of the wrong type, a removed member. The same seed gives the same
//! corpus on every machine, so a failure names a mutant that can be rebuilt and kept as a
//! regression file.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

/// One input of the corpus.
pub struct Mutant {
    /// `<seed bundle>#<n>:<mutation>`, to rebuild or name the regression file.
    pub name: String,
    pub text: String,
    /// The seed's patient id (for `--patient`).
    pub patient: String,
}

/// The kinds of mutation, each used in turn.
const KINDS: &[&str] = &[
    "truncate",
    "empty-array",
    "unknown-array",
    "unknown-object",
    "unknown-number",
    "unknown-string",
    "unknown-bool",
    "unknown-null",
    "unknown-nested-arrays",
    "duplicate-key",
    "nul-escaped",
    "nul-raw",
    "deep-nesting",
    "huge-number",
    "wrong-type",
    "remove-member",
    "array-for-object",
    "object-for-array",
];

/// The shared folder (`../shared` beside the repository, or `LRT_SHARED_DIR`).
pub fn shared_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("LRT_SHARED_DIR") {
        return PathBuf::from(d);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared")
}

/// Seed Bundles: MIMIC patients' transaction Bundles of several sizes (lines of the NDJSON,
/// chosen by size so that the run stays short) and the US Core examples.
pub fn seeds(count: usize) -> Vec<(String, Value)> {
    let path =
        shared_dir().join("data/mimic-iv-demo-fhir/mimic-iv-demo-icu-resp.transactions.ndjson");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (is ../shared beside the repository?)",
            path.display()
        )
    });
    let mut lines: Vec<(usize, &str)> = text.lines().enumerate().collect();
    lines.sort_by_key(|(_, l)| l.len());
    // Evenly spaced over the sizes, the largest excluded (it costs time, not coverage).
    let n = lines.len().saturating_sub(1);
    let mut seeds: Vec<(String, Value)> = (0..count)
        .map(|i| lines[i * n / count])
        .map(|(line, l)| {
            (
                format!("mimic-line-{}", line + 1),
                serde_json::from_str(l).expect("the NDJSON holds JSON"),
            )
        })
        .collect();
    let us_core = shared_dir().join("data/us-core-examples");
    let mut entries = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(&us_core)
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    for f in files {
        if let Ok(v) =
            serde_json::from_str::<Value>(&std::fs::read_to_string(&f).unwrap_or_default())
        {
            entries.push(serde_json::json!({"resource": v}));
        }
    }
    seeds.push((
        "us-core".into(),
        serde_json::json!({"resourceType": "Bundle", "type": "collection", "entry": entries}),
    ));
    seeds
}

/// The corpus: `per_seed` mutants of each seed, kinds in turn, positions from a seeded RNG.
pub fn corpus(seed: u64, seeds: &[(String, Value)], per_seed: usize) -> Vec<Mutant> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut out = Vec::new();
    for (name, bundle) in seeds {
        let text = serde_json::to_string(bundle).expect("a Value serialises");
        let patient = bundle["entry"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|e| e["resource"]["resourceType"] == "Patient")
            .and_then(|e| e["resource"]["id"].as_str())
            .unwrap_or("example")
            .to_string();
        for i in 0..per_seed {
            let kind = KINDS[(i + out.len()) % KINDS.len()];
            let mutated = mutate(&mut rng, bundle, &text, kind);
            out.push(Mutant {
                name: format!("{name}#{i}:{kind}"),
                text: mutated,
                patient: patient.clone(),
            });
        }
    }
    out
}

/// Every object and array of the tree, as paths of keys / indices.
#[derive(Clone, Debug)]
enum Step {
    Key(String),
    Index(usize),
}

fn containers(v: &Value, path: &mut Vec<Step>, out: &mut Vec<(Vec<Step>, bool)>) {
    match v {
        Value::Object(m) => {
            out.push((path.clone(), true));
            for (k, c) in m {
                path.push(Step::Key(k.clone()));
                containers(c, path, out);
                path.pop();
            }
        }
        Value::Array(a) => {
            out.push((path.clone(), false));
            for (i, c) in a.iter().enumerate() {
                path.push(Step::Index(i));
                containers(c, path, out);
                path.pop();
            }
        }
        _ => {}
    }
}

fn at<'a>(v: &'a mut Value, path: &[Step]) -> &'a mut Value {
    path.iter().fold(v, |v, s| match s {
        Step::Key(k) => &mut v[k.as_str()],
        Step::Index(i) => &mut v[*i],
    })
}

fn pick<'a, T>(rng: &mut fastrand::Rng, items: &'a [T]) -> &'a T {
    &items[rng.usize(..items.len())]
}

/// The paths of every object below the root.
fn object_paths(tree: &Value) -> Vec<Vec<Step>> {
    let mut all = Vec::new();
    containers(tree, &mut Vec::new(), &mut all);
    all.into_iter()
        .filter(|(p, is_obj)| *is_obj && !p.is_empty())
        .map(|(p, _)| p)
        .collect()
}

/// A random object of the tree and one of its members (key), if any.
fn some_member(rng: &mut fastrand::Rng, tree: &Value) -> Option<(Vec<Step>, String)> {
    let objects = object_paths(tree);
    for _ in 0..20 {
        let path = pick(rng, &objects).clone();
        let mut probe = tree.clone();
        let keys: Vec<String> = at(&mut probe, &path)
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        if !keys.is_empty() {
            let key = pick(rng, &keys).clone();
            return Some((path, key));
        }
    }
    None
}

fn some_object<'a>(rng: &mut fastrand::Rng, tree: &'a mut Value) -> &'a mut Map<String, Value> {
    let objects = object_paths(tree);
    let path = pick(rng, &objects).clone();
    at(tree, &path).as_object_mut().expect("an object path")
}

fn nested(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

fn mutate(rng: &mut fastrand::Rng, bundle: &Value, text: &str, kind: &str) -> String {
    let mut tree = bundle.clone();
    let unknown = format!("vendor{}", rng.u32(..1000));
    match kind {
        "truncate" => {
            let mut cut = rng.usize(1..text.len());
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            return text[..cut].to_string();
        }
        "empty-array" => {
            let names = [
                "name",
                "coding",
                "extension",
                "component",
                "category",
                "identifier",
                "entry",
                "issue",
                "contained",
                "link",
            ];
            let obj = some_object(rng, &mut tree);
            // Replace an existing array if the object has one, else add a known name.
            let existing: Vec<String> = obj
                .iter()
                .filter(|(_, v)| v.is_array())
                .map(|(k, _)| k.clone())
                .collect();
            let key = if existing.is_empty() || rng.bool() {
                pick(rng, &names).to_string()
            } else {
                pick(rng, &existing).clone()
            };
            obj.insert(key, Value::Array(Vec::new()));
        }
        "unknown-array" => {
            let v = match rng.u8(..4) {
                0 => serde_json::json!([1, 2]),
                1 => serde_json::json!([]),
                2 => serde_json::json!([{"a": [1]}, "x", null]),
                _ => serde_json::json!([[1], [[2]]]),
            };
            some_object(rng, &mut tree).insert(unknown, v);
        }
        "unknown-object" => {
            some_object(rng, &mut tree)
                .insert(unknown, serde_json::json!({"a": {"b": [1, {"c": []}]}}));
        }
        "unknown-number" => {
            some_object(rng, &mut tree).insert(unknown, serde_json::json!(12.5));
        }
        "unknown-string" => {
            some_object(rng, &mut tree).insert(unknown, serde_json::json!("x"));
        }
        "unknown-bool" => {
            some_object(rng, &mut tree).insert(unknown, serde_json::json!(true));
        }
        "unknown-null" => {
            some_object(rng, &mut tree).insert(unknown, Value::Null);
        }
        "unknown-nested-arrays" => {
            let depth = rng.usize(2..100);
            let v: Value = serde_json::from_str(&nested(depth)).expect("nested arrays");
            some_object(rng, &mut tree).insert(unknown, v);
        }
        "duplicate-key" => {
            // Text level: a Value cannot hold two equal keys.
            if let Some((_, key)) = some_member(rng, &tree) {
                let needle = format!("\"{key}\":");
                if let Some(pos) = text.find(&needle) {
                    let dup = match rng.u8(..3) {
                        0 => "\"x\"".to_string(),
                        1 => "[]".to_string(),
                        _ => "{\"a\":[1,2]}".to_string(),
                    };
                    return format!("{}{needle}{dup},{}", &text[..pos], &text[pos..]);
                }
            }
        }
        "nul-escaped" | "nul-raw" => {
            let mut strings = Vec::new();
            for (i, _) in text.match_indices(":\"") {
                strings.push(i + 2);
            }
            if let Some(&pos) = strings.get(rng.usize(..strings.len().max(1))) {
                let nul = if kind == "nul-raw" {
                    "\u{0}"
                } else {
                    "\\u0000"
                };
                return format!("{}{nul}{}", &text[..pos], &text[pos..]);
            }
        }
        "deep-nesting" => {
            let depth = *pick(rng, &[129usize, 1_000, 100_000]);
            if let Some((path, key)) = some_member(rng, &tree) {
                // Text level: a Value this deep cannot be built by serde_json.
                let marker = "\"__deep_nesting_marker__\"";
                at(&mut tree, &path)[key.as_str()] =
                    Value::String("__deep_nesting_marker__".into());
                let t = serde_json::to_string(&tree).expect("serialises");
                return t.replacen(marker, &nested(depth), 1);
            }
        }
        "huge-number" => {
            let numbers = [
                "1e400",
                "-1e400",
                "123456789012345678901234567890",
                "1e-400",
                "-0",
                "0.000000000000000000001",
                "18446744073709551616",
            ];
            let n = *pick(rng, &numbers);
            if let Some((path, key)) = some_member(rng, &tree) {
                let marker = "\"__huge_number_marker__\"";
                at(&mut tree, &path)[key.as_str()] = Value::String("__huge_number_marker__".into());
                let t = serde_json::to_string(&tree).expect("serialises");
                return t.replacen(marker, n, 1);
            }
        }
        "wrong-type" => {
            if let Some((path, key)) = some_member(rng, &tree) {
                let v = match rng.u8(..5) {
                    0 => serde_json::json!(42),
                    1 => serde_json::json!("text"),
                    2 => serde_json::json!(false),
                    3 => serde_json::json!({}),
                    _ => serde_json::json!(["a"]),
                };
                at(&mut tree, &path)[key.as_str()] = v;
            }
        }
        "remove-member" => {
            if let Some((path, key)) = some_member(rng, &tree) {
                at(&mut tree, &path).as_object_mut().map(|m| m.remove(&key));
            }
        }
        "array-for-object" => {
            if let Some((path, key)) = some_member(rng, &tree) {
                let slot = &mut at(&mut tree, &path)[key.as_str()];
                if !slot.is_array() {
                    let v = slot.take();
                    *slot = Value::Array(vec![v.clone(), v]);
                }
            }
        }
        "object-for-array" => {
            if let Some((path, key)) = some_member(rng, &tree) {
                let slot = &mut at(&mut tree, &path)[key.as_str()];
                if let Some(first) = slot.as_array().and_then(|a| a.first()).cloned() {
                    *slot = first;
                }
            }
        }
        other => unreachable!("unknown mutation kind {other}"),
    }
    serde_json::to_string(&tree).expect("a Value serialises")
}
