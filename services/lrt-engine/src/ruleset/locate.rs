//! Where an error is in its YAML file: the line of a JSON pointer, and the item it is inside.
//!
//! Errors are found on the parsed JSON value and located by JSON pointer; for people the
//! pointer becomes a line number (by walking the YAML parser's events, which carry spans) and
//! the id of the rule, score, classification, series or catalogue entry around it. Done once,
//! after loading failed, for every error of every file (see [`super::RuleSet::load`]).

use std::collections::HashMap;

use granit_parser::{Event, Parser};
use serde_json::Value;

use super::{RuleError, SourceFile};

/// Fills `line` and `item` of every error that names one of `files` and a pointer.
pub(crate) fn annotate(errors: &mut [RuleError], files: &[SourceFile]) {
    let mut lines: HashMap<&str, HashMap<String, usize>> = HashMap::new();
    for e in errors.iter_mut() {
        if e.pointer.is_empty() {
            continue;
        }
        let Some(f) = files.iter().find(|f| f.display == e.file) else {
            continue;
        };
        let index = lines
            .entry(f.display.as_str())
            .or_insert_with(|| node_lines(&f.text));
        if e.line.is_none() {
            e.line = line_of(index, &e.pointer);
        }
        if e.item.is_none() {
            e.item = item_of(&f.value, &e.pointer);
        }
    }
}

/// The line of the node at `pointer`, or of its deepest ancestor that exists (a missing key
/// is reported at the object that lacks it).
fn line_of(index: &HashMap<String, usize>, pointer: &str) -> Option<usize> {
    let mut p = pointer;
    loop {
        if let Some(&line) = index.get(p) {
            return Some(line);
        }
        let cut = p.rfind('/')?;
        p = &p[..cut];
        if p.is_empty() {
            return None;
        }
    }
}

/// Escapes a key for a JSON pointer (RFC 6901).
fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// The 1-based line of every node of the first document, by JSON pointer. A mapping entry is
/// at the line of its key (`when:` rather than the first line of the condition below it).
pub(crate) fn node_lines(text: &str) -> HashMap<String, usize> {
    enum Frame {
        Map {
            path: String,
            /// The key whose value comes next (`None`: a key comes next).
            key: Option<String>,
        },
        Seq {
            path: String,
            next: usize,
        },
    }
    let mut out = HashMap::new();
    let mut stack: Vec<Frame> = Vec::new();
    // The path of the node an event starts, and marks a map's key as consumed.
    fn enter(stack: &mut [Frame]) -> Option<String> {
        match stack.last_mut() {
            None => Some(String::new()),
            Some(Frame::Map { path, key }) => key.take().map(|k| format!("{path}/{}", escape(&k))),
            Some(Frame::Seq { path, next }) => {
                let p = format!("{path}/{next}");
                *next += 1;
                Some(p)
            }
        }
    }
    for item in Parser::new_from_str(text) {
        let Ok((event, span)) = item else { break };
        let line = span.start.line();
        match event {
            Event::Scalar(value, ..) => {
                if let Some(Frame::Map { path, key }) = stack.last_mut()
                    && key.is_none()
                {
                    let p = format!("{path}/{}", escape(&value));
                    out.entry(p).or_insert(line);
                    *key = Some(value.into_owned());
                    continue;
                }
                if let Some(p) = enter(&mut stack) {
                    out.entry(p).or_insert(line);
                }
            }
            Event::Alias(_) => {
                if let Some(p) = enter(&mut stack) {
                    out.entry(p).or_insert(line);
                }
            }
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                // A collection used as a mapping key has no pointer; skip past it.
                let path = match stack.last() {
                    Some(Frame::Map { key: None, .. }) => None,
                    _ => enter(&mut stack),
                };
                let path = path.unwrap_or_else(|| "\u{0}".to_string());
                out.entry(path.clone()).or_insert(line);
                stack.push(if matches!(event, Event::MappingStart(..)) {
                    Frame::Map { path, key: None }
                } else {
                    Frame::Seq { path, next: 0 }
                });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                stack.pop();
            }
            Event::DocumentEnd => break,
            _ => {}
        }
    }
    out
}

/// The id of the item `pointer` is inside: a list entry's `id` (or `code`) one level below
/// its section (`/rules/3/when` → the rule's id), or a named entry's key
/// (`/parameters/bmi_relative_ci/value` → `bmi_relative_ci`).
pub(crate) fn item_of(value: &Value, pointer: &str) -> Option<String> {
    let mut parts = pointer.strip_prefix('/')?.split('/');
    let section = parts.next()?;
    let entry = parts.next()?;
    if section == "ruleset" {
        return None;
    }
    let unescape = |s: &str| s.replace("~1", "/").replace("~0", "~");
    match value.get(unescape(section))? {
        Value::Array(list) => {
            let e = list.get(entry.parse::<usize>().ok()?)?;
            ["id", "code"]
                .iter()
                .find_map(|k| e.get(*k).and_then(Value::as_str))
                .map(str::to_string)
        }
        Value::Object(map) => {
            let key = unescape(entry);
            map.contains_key(&key).then_some(key)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const YAML: &str = "\
# a comment
rules:
  - id: first
    cites: \"§2.7\"
    when: {fact: age_years, ge: {param: age_relative_ci}}
  - id: second
    cites: \"§2.7\"
    when:
      all:
        - {fact: bmi, gt: {param: bmi_relative_ci}}
        - {group_fired: hard_stop}
parameters:
  bmi_relative_ci: {value: 45, unit: \"kg/m2\", cites: \"§2.7\"}
  a/b: 1
";

    #[test]
    fn pointers_map_to_the_lines_of_their_nodes() {
        let index = node_lines(YAML);
        assert_eq!(line_of(&index, "/rules"), Some(2));
        assert_eq!(line_of(&index, "/rules/0"), Some(3));
        assert_eq!(line_of(&index, "/rules/0/when/ge/param"), Some(5));
        assert_eq!(line_of(&index, "/rules/1"), Some(6));
        assert_eq!(line_of(&index, "/rules/1/when"), Some(8));
        assert_eq!(line_of(&index, "/rules/1/when/all/1/group_fired"), Some(11));
        assert_eq!(
            line_of(&index, "/parameters/bmi_relative_ci/unit"),
            Some(13)
        );
        assert_eq!(line_of(&index, "/parameters/a~1b"), Some(14));
        // A missing key is reported at the object that lacks it.
        assert_eq!(line_of(&index, "/rules/1/cites/evidence"), Some(7));
        assert_eq!(line_of(&index, "/rules/1/group"), Some(6));
        assert_eq!(line_of(&index, "/nothing"), None);
    }

    #[test]
    fn pointers_name_their_item() {
        let v: Value = serde_json::json!({
            "rules": [{"id": "first"}],
            "hard_stops": [{"code": "REFUSAL"}],
            "parameters": {"bmi_relative_ci": {"value": 45}},
            "ruleset": {"id": "lrt-ruleset"}
        });
        assert_eq!(item_of(&v, "/rules/0/when/ge").as_deref(), Some("first"));
        assert_eq!(
            item_of(&v, "/hard_stops/0/cites").as_deref(),
            Some("REFUSAL")
        );
        assert_eq!(
            item_of(&v, "/parameters/bmi_relative_ci/unit").as_deref(),
            Some("bmi_relative_ci")
        );
        assert_eq!(item_of(&v, "/ruleset/version"), None);
        assert_eq!(item_of(&v, "/rules/7"), None);
        assert_eq!(item_of(&v, ""), None);
    }
}
