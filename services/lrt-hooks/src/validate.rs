//! A validator of CDS Hooks 2.0 responses and discovery documents, on the serialized JSON
//! (what actually goes out), so the server's tests can run it on every response.
//!
//! Each [`Violation`] names the JSON pointer, the rule (a checklist item such as `A.2`, a 2.0
//! rule `F.21`, a formal invariant `cds-resp-1` ... `cds-resp-6`, or `P` for a project
//! policy) and what is wrong. Checked:
//!
//! | rule | check |
//! |---|---|
//! | A.2 | no `null`; no empty string, array or object anywhere, except `cards: []` (and `services: []`) |
//! | A.3 | `extension` is an object |
//! | F.19 | the body is an object with a `cards` array; `systemActions` an array; no other top-level member |
//! | F.21 | card members known; `summary` a non-blank string of fewer than 140 characters; `detail` a string; `indicator` one of info, warning, critical; `selectionBehavior` one of at-most-one, any |
//! | P | every card and every suggestion has a `uuid` that is a UUID; uuids unique in the response |
//! | F.22 | `source` an object with a non-blank `label`; `url`, `icon` absolute http(s) URLs; `topic` a Coding |
//! | F.23 | suggestion members known; `label` required; `isRecommended` a boolean; `actions` an array |
//! | F.24 | action `type` one of create, update, delete; `create`/`update` carry a FHIR resource (`update` with its id); `resourceId` a relative reference `Type/id` |
//! | F.25 | link `label`, absolute `url` and `type` absolute or smart |
//! | F.26 | a Coding has string `system` and `code` |
//! | cds-resp-1 | with `at-most-one`, at most one suggestion `isRecommended` |
//! | cds-resp-2 | a `delete` has a `resourceId` and no `resource` |
//! | cds-resp-3 | `appContext` only on `smart` links |
//! | cds-resp-4 | every override reason has a `display` |
//! | cds-resp-5 | every action has a `description` |
//! | cds-resp-6 | a card with suggestions has a `selectionBehavior` |
//! | B.6, D.12 | discovery: `services` array; each service has `hook`, `description`, `id`; `prefetch` maps keys to template strings whose tokens are allowed (root-level `context.*` or the user tokens); (id, hook) pairs unique |

use std::collections::BTreeSet;

use serde_json::{Map, Value};
use url::Url;
use uuid::Uuid;

/// One broken rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// JSON pointer of the offending value (`""` = the whole body).
    pub path: String,
    /// The rule (see the module docs).
    pub rule: &'static str,
    pub message: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} [{}]: {}", self.path, self.rule, self.message)
    }
}

struct Check {
    out: Vec<Violation>,
    uuids: BTreeSet<String>,
}

impl Check {
    fn new() -> Check {
        Check {
            out: Vec::new(),
            uuids: BTreeSet::new(),
        }
    }

    fn push(&mut self, path: &str, rule: &'static str, message: impl Into<String>) {
        self.out.push(Violation {
            path: path.to_string(),
            rule,
            message: message.into(),
        });
    }
}

fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// A.2 everywhere below `value`.
fn no_null_or_empty(c: &mut Check, value: &Value, path: &str, allowed_empty: &[&str]) {
    match value {
        Value::Null => c.push(path, "A.2", "null is not allowed: omit the member"),
        Value::String(s) if s.is_empty() => c.push(path, "A.2", "empty string"),
        Value::Array(a) => {
            if a.is_empty() && !allowed_empty.contains(&path) {
                c.push(path, "A.2", "empty array: omit the member");
            }
            for (i, v) in a.iter().enumerate() {
                no_null_or_empty(c, v, &format!("{path}/{i}"), allowed_empty);
            }
        }
        Value::Object(m) => {
            if m.is_empty() {
                c.push(path, "A.2", "empty object: omit the member");
            }
            for (k, v) in m {
                no_null_or_empty(c, v, &format!("{path}/{}", escape(k)), allowed_empty);
            }
        }
        _ => {}
    }
}

fn unknown_members(
    c: &mut Check,
    obj: &Map<String, Value>,
    path: &str,
    rule: &'static str,
    known: &[&str],
) {
    for k in obj.keys() {
        if !known.contains(&k.as_str()) {
            c.push(
                &format!("{path}/{}", escape(k)),
                rule,
                format!("unknown member `{k}` (allowed: {})", known.join(", ")),
            );
        }
    }
}

fn extension(c: &mut Check, obj: &Map<String, Value>, path: &str) {
    if let Some(e) = obj.get("extension")
        && !e.is_object()
    {
        c.push(
            &format!("{path}/extension"),
            "A.3",
            "`extension` must be an object",
        );
    }
}

fn string<'a>(
    c: &mut Check,
    obj: &'a Map<String, Value>,
    path: &str,
    key: &str,
    required: bool,
    rule: &'static str,
) -> Option<&'a str> {
    match obj.get(key) {
        None if required => {
            c.push(path, rule, format!("`{key}` is required"));
            None
        }
        None => None,
        Some(Value::String(s)) => {
            if s.trim().is_empty() {
                c.push(&format!("{path}/{key}"), rule, format!("`{key}` is blank"));
            }
            Some(s)
        }
        Some(_) => {
            c.push(
                &format!("{path}/{key}"),
                rule,
                format!("`{key}` must be a string"),
            );
            None
        }
    }
}

fn absolute_url(
    c: &mut Check,
    obj: &Map<String, Value>,
    path: &str,
    key: &str,
    required: bool,
    rule: &'static str,
) {
    if let Some(s) = string(c, obj, path, key, required, rule) {
        let ok = Url::parse(s)
            .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
        if !ok {
            c.push(
                &format!("{path}/{key}"),
                rule,
                format!("`{key}` must be an absolute http(s) URL"),
            );
        }
    }
}

fn uuid(c: &mut Check, obj: &Map<String, Value>, path: &str) {
    match obj.get("uuid") {
        None => c.push(path, "P", "`uuid` is missing (needed for feedback, R163)"),
        Some(Value::String(s)) => {
            if Uuid::parse_str(s).is_err() {
                c.push(&format!("{path}/uuid"), "P", "`uuid` is not a UUID");
            } else if !c.uuids.insert(s.to_ascii_lowercase()) {
                c.push(
                    &format!("{path}/uuid"),
                    "P",
                    "`uuid` is not unique in the response",
                );
            }
        }
        Some(_) => c.push(&format!("{path}/uuid"), "P", "`uuid` must be a string"),
    }
}

fn coding(c: &mut Check, v: &Value, path: &str, display_required: bool) {
    let Some(obj) = v.as_object() else {
        c.push(path, "F.26", "a Coding must be an object");
        return;
    };
    string(c, obj, path, "system", true, "F.26");
    string(c, obj, path, "code", true, "F.26");
    if display_required {
        string(c, obj, path, "display", true, "cds-resp-4");
    } else {
        string(c, obj, path, "display", false, "F.26");
    }
}

fn array<'a>(
    c: &mut Check,
    obj: &'a Map<String, Value>,
    path: &str,
    key: &str,
    rule: &'static str,
) -> &'a [Value] {
    match obj.get(key) {
        None => &[],
        Some(Value::Array(a)) => a,
        Some(_) => {
            c.push(
                &format!("{path}/{key}"),
                rule,
                format!("`{key}` must be an array"),
            );
            &[]
        }
    }
}

fn is_relative_reference(s: &str) -> bool {
    crate::model::split_reference(s).is_some()
}

fn action(c: &mut Check, v: &Value, path: &str) {
    let Some(obj) = v.as_object() else {
        c.push(path, "F.24", "an action must be an object");
        return;
    };
    unknown_members(
        c,
        obj,
        path,
        "F.24",
        &["type", "description", "resource", "resourceId", "extension"],
    );
    extension(c, obj, path);
    string(c, obj, path, "description", true, "cds-resp-5");
    let kind = string(c, obj, path, "type", true, "F.24");
    if let Some(k) = kind
        && !matches!(k, "create" | "update" | "delete")
    {
        c.push(
            &format!("{path}/type"),
            "F.24",
            format!("action type `{k}` is not create, update or delete"),
        );
    }
    let resource = obj.get("resource");
    let resource_id = string(c, obj, path, "resourceId", false, "F.24");
    if let Some(id) = resource_id
        && !is_relative_reference(id)
    {
        c.push(
            &format!("{path}/resourceId"),
            "F.24",
            "`resourceId` must be a relative reference `Type/id`",
        );
    }
    match kind {
        Some("create" | "update") => match resource {
            Some(Value::Object(r)) if r.get("resourceType").is_some_and(Value::is_string) => {
                if kind == Some("update") && !r.get("id").is_some_and(Value::is_string) {
                    c.push(
                        &format!("{path}/resource"),
                        "F.24",
                        "an `update` carries the whole resource, with its id",
                    );
                }
            }
            _ => c.push(
                path,
                "F.24",
                "a `create` or `update` must carry a FHIR resource in `resource`",
            ),
        },
        Some("delete") if resource_id.is_none() || resource.is_some() => {
            c.push(
                path,
                "cds-resp-2",
                "a `delete` needs `resourceId` and no `resource`",
            );
        }
        _ => {}
    }
}

fn suggestion(c: &mut Check, v: &Value, path: &str) -> bool {
    let Some(obj) = v.as_object() else {
        c.push(path, "F.23", "a suggestion must be an object");
        return false;
    };
    unknown_members(
        c,
        obj,
        path,
        "F.23",
        &["label", "uuid", "isRecommended", "actions", "extension"],
    );
    extension(c, obj, path);
    string(c, obj, path, "label", true, "F.23");
    uuid(c, obj, path);
    let recommended = match obj.get("isRecommended") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            c.push(
                &format!("{path}/isRecommended"),
                "F.23",
                "`isRecommended` must be a boolean",
            );
            false
        }
    };
    for (i, a) in array(c, obj, path, "actions", "F.23").iter().enumerate() {
        action(c, a, &format!("{path}/actions/{i}"));
    }
    recommended
}

fn link(c: &mut Check, v: &Value, path: &str) {
    let Some(obj) = v.as_object() else {
        c.push(path, "F.25", "a link must be an object");
        return;
    };
    unknown_members(
        c,
        obj,
        path,
        "F.25",
        &["label", "url", "type", "appContext", "extension"],
    );
    extension(c, obj, path);
    string(c, obj, path, "label", true, "F.25");
    absolute_url(c, obj, path, "url", true, "F.25");
    let kind = string(c, obj, path, "type", true, "F.25");
    if let Some(k) = kind
        && !matches!(k, "absolute" | "smart")
    {
        c.push(
            &format!("{path}/type"),
            "F.25",
            format!("link type `{k}` is not absolute or smart"),
        );
    }
    if obj.contains_key("appContext") && kind != Some("smart") {
        c.push(
            &format!("{path}/appContext"),
            "cds-resp-3",
            "`appContext` is only valid on smart links",
        );
    }
}

fn card(c: &mut Check, v: &Value, path: &str) {
    let Some(obj) = v.as_object() else {
        c.push(path, "F.21", "a card must be an object");
        return;
    };
    unknown_members(
        c,
        obj,
        path,
        "F.21",
        &[
            "uuid",
            "summary",
            "detail",
            "indicator",
            "source",
            "suggestions",
            "selectionBehavior",
            "overrideReasons",
            "links",
            "extension",
        ],
    );
    extension(c, obj, path);
    uuid(c, obj, path);
    if let Some(s) = string(c, obj, path, "summary", true, "F.21") {
        let n = s.chars().count();
        if n >= 140 {
            c.push(
                &format!("{path}/summary"),
                "F.21",
                format!("summary has {n} characters (must be < 140)"),
            );
        }
    }
    string(c, obj, path, "detail", false, "F.21");
    if let Some(i) = string(c, obj, path, "indicator", true, "F.21")
        && !matches!(i, "info" | "warning" | "critical")
    {
        c.push(
            &format!("{path}/indicator"),
            "F.21",
            format!("indicator `{i}` is not info, warning or critical"),
        );
    }
    match obj.get("source") {
        None => c.push(path, "F.22", "`source` is required"),
        Some(Value::Object(src)) => {
            let sp = format!("{path}/source");
            unknown_members(
                c,
                src,
                &sp,
                "F.22",
                &["label", "url", "icon", "topic", "extension"],
            );
            string(c, src, &sp, "label", true, "F.22");
            absolute_url(c, src, &sp, "url", false, "F.22");
            absolute_url(c, src, &sp, "icon", false, "F.22");
            if let Some(t) = src.get("topic") {
                coding(c, t, &format!("{sp}/topic"), false);
            }
        }
        Some(_) => c.push(
            &format!("{path}/source"),
            "F.22",
            "`source` must be an object",
        ),
    }
    let suggestions = array(c, obj, path, "suggestions", "F.21");
    let mut recommended = 0usize;
    for (i, s) in suggestions.iter().enumerate() {
        if suggestion(c, s, &format!("{path}/suggestions/{i}")) {
            recommended += 1;
        }
    }
    let behavior = string(c, obj, path, "selectionBehavior", false, "F.21");
    if let Some(b) = behavior
        && !matches!(b, "at-most-one" | "any")
    {
        c.push(
            &format!("{path}/selectionBehavior"),
            "F.21",
            format!("selectionBehavior `{b}` is not at-most-one or any"),
        );
    }
    if obj.contains_key("suggestions") && behavior.is_none() {
        c.push(
            path,
            "cds-resp-6",
            "a card with suggestions needs `selectionBehavior`",
        );
    }
    if behavior == Some("at-most-one") && recommended > 1 {
        c.push(
            path,
            "cds-resp-1",
            "with `at-most-one`, at most one suggestion may be recommended",
        );
    }
    for (i, r) in array(c, obj, path, "overrideReasons", "F.21")
        .iter()
        .enumerate()
    {
        coding(c, r, &format!("{path}/overrideReasons/{i}"), true);
    }
    for (i, l) in array(c, obj, path, "links", "F.21").iter().enumerate() {
        link(c, l, &format!("{path}/links/{i}"));
    }
}

/// Every violation of a CDS service response (see the module docs); empty when valid.
pub fn validate_response(body: &Value) -> Vec<Violation> {
    let mut c = Check::new();
    no_null_or_empty(&mut c, body, "", &["/cards"]);
    let Some(obj) = body.as_object() else {
        c.push("", "F.19", "the response must be a JSON object");
        return c.out;
    };
    unknown_members(
        &mut c,
        obj,
        "",
        "F.19",
        &["cards", "systemActions", "extension"],
    );
    extension(&mut c, obj, "");
    match obj.get("cards") {
        Some(Value::Array(cards)) => {
            for (i, v) in cards.iter().enumerate() {
                card(&mut c, v, &format!("/cards/{i}"));
            }
        }
        Some(_) => c.push("/cards", "F.19", "`cards` must be an array"),
        None => c.push(
            "",
            "F.19",
            "`cards` is required (`[]` when there is no advice)",
        ),
    }
    let actions = array(&mut c, obj, "", "systemActions", "F.19").to_vec();
    for (i, a) in actions.iter().enumerate() {
        action(&mut c, a, &format!("/systemActions/{i}"));
    }
    c.out
}

/// Every violation of a discovery document (checklist B.5, B.6, D.12); empty when valid.
pub fn validate_discovery(body: &Value) -> Vec<Violation> {
    let mut c = Check::new();
    no_null_or_empty(&mut c, body, "", &["/services"]);
    let Some(obj) = body.as_object() else {
        c.push("", "B.5", "discovery must be a JSON object");
        return c.out;
    };
    let services = match obj.get("services") {
        Some(Value::Array(s)) => s.clone(),
        _ => {
            c.push("", "B.5", "`services` (an array) is required");
            return c.out;
        }
    };
    let mut pairs = BTreeSet::new();
    for (i, s) in services.iter().enumerate() {
        let path = format!("/services/{i}");
        let Some(so) = s.as_object() else {
            c.push(&path, "B.6", "a service must be an object");
            continue;
        };
        unknown_members(
            &mut c,
            so,
            &path,
            "B.6",
            &[
                "hook",
                "title",
                "description",
                "id",
                "prefetch",
                "usageRequirements",
                "extension",
            ],
        );
        extension(&mut c, so, &path);
        let hook = string(&mut c, so, &path, "hook", true, "B.6");
        string(&mut c, so, &path, "title", false, "B.6");
        string(&mut c, so, &path, "description", true, "B.6");
        let id = string(&mut c, so, &path, "id", true, "B.6");
        string(&mut c, so, &path, "usageRequirements", false, "B.6");
        if let (Some(h), Some(id)) = (hook, id)
            && !pairs.insert((id.to_string(), h.to_string()))
        {
            c.push(&path, "B.7", "the (id, hook) pair is listed twice");
        }
        match so.get("prefetch") {
            None => {}
            Some(Value::Object(p)) => {
                for (k, t) in p {
                    let tp = format!("{path}/prefetch/{}", escape(k));
                    match t.as_str() {
                        Some(t) if crate::services::template_tokens_valid(t) => {}
                        Some(_) => {
                            c.push(&tp, "D.12", "the template uses a token that is not allowed")
                        }
                        None => c.push(&tp, "B.6", "a prefetch template must be a string"),
                    }
                }
            }
            Some(_) => c.push(
                &format!("{path}/prefetch"),
                "B.6",
                "`prefetch` must be an object",
            ),
        }
    }
    c.out
}
