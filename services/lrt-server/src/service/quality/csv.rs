//! `Accept: text/csv`: an aggregate as one long ("tidy") table, `section,dimensions,measure,value`,
//! that a spreadsheet or R/pandas pivots as it likes. Made from the JSON answer, so the CSV
//! always says what the JSON says:
//! * an object of figures (`totals`, `latency_ms`, `timeliness_s`) gives one row per figure,
//!   with empty dimensions (a figure at the top level, such as `pairs`, goes under `totals`);
//! * a list (`series`, `by_…`, `items`, `disagreements`, …) gives, for each element, one row per
//!   number (but an HTTP `status`), its dimensions being the element's other fields as
//!   `name=value` joined by `;` (a
//!   nested object's fields as `outer.inner`, a list joined by `|`, null as empty);
//! * an element without numbers (a shadow disagreement) gives one row with an empty measure;
//! * the echoed `window`, `filters` and `next_cursor` are left out (they are the request's own).
//!
//! Fields are quoted when they hold a comma, a quote, a semicolon or a line break (RFC 4180).

use serde_json::{Map, Value};

/// The sections that echo the request, not figures.
const ECHOED: [&str; 3] = ["window", "filters", "next_cursor"];

/// Numbers that name a group rather than count it (an HTTP status).
const NUMERIC_DIMENSIONS: [&str; 1] = ["status"];

/// The CSV text of an aggregate's JSON answer.
pub fn long_table(answer: &Value) -> String {
    let mut out = String::from("section,dimensions,measure,value\r\n");
    let Some(sections) = answer.as_object() else {
        return out;
    };
    for (section, value) in sections {
        if ECHOED.contains(&section.as_str()) {
            continue;
        }
        match value {
            Value::Object(figures) => {
                for (measure, v) in figures {
                    row(&mut out, section, "", measure, v);
                }
            }
            Value::Array(elements) => {
                for element in elements {
                    let Some(fields) = element.as_object() else {
                        continue;
                    };
                    let mut dimensions = Vec::new();
                    let mut measures = Vec::new();
                    split(fields, "", &mut dimensions, &mut measures);
                    let dimensions = dimensions.join(";");
                    if measures.is_empty() {
                        row(&mut out, section, &dimensions, "", &Value::Null);
                    }
                    for (measure, v) in measures {
                        row(&mut out, section, &dimensions, &measure, &v);
                    }
                }
            }
            figure => row(&mut out, "totals", "", section, figure),
        }
    }
    out
}

/// Sorts an element's fields into dimensions (`name=value`) and measures (numbers).
fn split(
    fields: &Map<String, Value>,
    prefix: &str,
    dimensions: &mut Vec<String>,
    measures: &mut Vec<(String, Value)>,
) {
    for (name, v) in fields {
        let name = format!("{prefix}{name}");
        match v {
            Value::Number(_) if !NUMERIC_DIMENSIONS.contains(&name.as_str()) => {
                measures.push((name, v.clone()));
            }
            Value::Object(inner) => split(inner, &format!("{name}."), dimensions, measures),
            Value::Array(items) => {
                let joined: Vec<String> = items.iter().map(text).collect();
                dimensions.push(format!("{name}={}", joined.join("|")));
            }
            other => dimensions.push(format!("{name}={}", text(other))),
        }
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn row(out: &mut String, section: &str, dimensions: &str, measure: &str, value: &Value) {
    let value = text(value);
    let cells = [section, dimensions, measure, value.as_str()].map(field);
    out.push_str(&cells.join(","));
    out.push_str("\r\n");
}

fn field(cell: &str) -> String {
    if cell.contains([',', '"', ';', '\n', '\r']) {
        format!("\"{}\"", cell.replace('"', "\"\""))
    } else {
        cell.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn figures_and_lists_become_long_rows() {
        let answer = json!({
            "window": {"from": "x"},
            "totals": {"calls": 3, "card_share": 0.5, "missing": null},
            "pairs": 2,
            "by_service": [{"hook": null, "service": "lrt-patient-view", "calls": 3}],
            "disagreements": [{"active": {"category": "a,\"b\"", "n": 1}, "fields": ["category", "urgency"]}],
            "listed": [{"x": "1"}],
            "errors_by_status": [{"calls": 1, "status": 412}],
        });
        // Key order follows the JSON object's (serde_json may sort keys): compare as sets,
        // with keys already in sorted order.
        let text = long_table(&answer);
        let mut lines: Vec<&str> = text.split("\r\n").filter(|l| !l.is_empty()).collect();
        assert_eq!(lines.remove(0), "section,dimensions,measure,value");
        lines.sort_unstable();
        let mut expected = vec![
            "totals,,calls,3",
            "totals,,card_share,0.5",
            "totals,,missing,",
            "totals,,pairs,2",
            "by_service,\"hook=;service=lrt-patient-view\",calls,3",
            "disagreements,\"active.category=a,\"\"b\"\";fields=category|urgency\",active.n,1",
            "listed,x=1,,",
            "errors_by_status,status=412,calls,1",
        ];
        expected.sort_unstable();
        assert_eq!(lines, expected);
    }
}
