//! Strict edges: input that PostgreSQL cannot store is refused at the door with a 400 that
//! names the field, before any handler runs.
//!
//! A NUL character is valid in JSON (`"\u0000"`) and in a URL (`%00`), but PostgreSQL refuses
//! it in `text` and `jsonb`; left to the handlers it surfaced as a 500 after the work was done.

use axum::body::Body;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::error::ApiError;

/// Refuses a request whose query string or JSON body holds a NUL character.
pub async fn refuse_nul(request: Request, next: Next) -> Response {
    if let Some(query) = request.uri().query()
        && let Some(name) = nul_query_parameter(query)
    {
        return ApiError::BadRequest(format!(
            "query parameter `{name}` holds a NUL character, which cannot be stored"
        ))
        .into_response();
    }
    let (parts, body) = request.into_parts();
    // The body is already bounded by the configured limit (the layers outside this one).
    let bytes = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(b) => b,
        Err(_) => {
            return (
                StatusCode::PAYLOAD_TOO_LARGE,
                "the request body is larger than allowed",
            )
                .into_response();
        }
    };
    if let Some(field) = nul_field(&bytes) {
        return ApiError::BadRequest(format!(
            "{field} holds a NUL character (\\u0000), which cannot be stored"
        ))
        .into_response();
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// The first query parameter whose name or value holds NUL once decoded.
pub fn nul_query_parameter(query: &str) -> Option<String> {
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, v)| k.contains('\0') || v.contains('\0'))
        .map(|(k, _)| k.replace('\0', "\\u0000"))
}

/// Where a JSON body holds NUL (a JSON pointer, `body` for the body as a whole), or `None`.
/// The common case costs two byte scans (for a NUL byte, and for the backslashes that could
/// start a `\u0000` escape: few in JSON); the tree is walked only when the escape is there.
pub fn nul_field(body: &[u8]) -> Option<String> {
    if memchr::memchr(0, body).is_some() {
        return Some("the request body".into());
    }
    if !may_escape_nul(body) {
        return None;
    }
    // Not JSON: the handler answers that; only a real NUL in a string matters here.
    let value: Value = serde_json::from_slice(body).ok()?;
    let mut path = String::new();
    find(&value, &mut path).then(|| format!("`{}`", if path.is_empty() { "/" } else { &path }))
}

/// Whether the text holds `\u0000` (any case): a NUL, or an escaped backslash before `u0000`.
/// (A 6-byte window compared at every byte was 2 % of the service's CPU under load: issue 9.)
fn may_escape_nul(body: &[u8]) -> bool {
    memchr::memchr_iter(b'\\', body).any(|i| {
        body.get(i + 1..i + 6)
            .is_some_and(|w| w.eq_ignore_ascii_case(b"u0000"))
    })
}

fn find(v: &Value, path: &mut String) -> bool {
    match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().enumerate().any(|(i, item)| {
            let len = path.len();
            path.push_str(&format!("/{i}"));
            let hit = find(item, path);
            if !hit {
                path.truncate(len);
            }
            hit
        }),
        Value::Object(map) => map.iter().any(|(k, item)| {
            let len = path.len();
            path.push('/');
            path.push_str(
                &k.replace('~', "~0")
                    .replace('/', "~1")
                    .replace('\0', "\\u0000"),
            );
            let hit = k.contains('\0') || find(item, path);
            if !hit {
                path.truncate(len);
            }
            hit
        }),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nul_is_found_and_named_by_its_pointer() {
        let body = br#"{"context": {"patientId": "p\u00001"}, "prefetch": {"x": [1, "ok"]}}"#;
        assert_eq!(nul_field(body), Some("`/context/patientId`".into()));
        let body = br#"{"a": ["x", {"u\u0000": 1}]}"#;
        assert_eq!(nul_field(body), Some("`/a/1/u\\u0000`".into()));
        assert_eq!(nul_field(br#"{"a": "\\u0000 is text"}"#), None);
        assert_eq!(nul_field(br#"{"a": "fine"}"#), None);
        assert_eq!(nul_field(b"raw \0 byte"), Some("the request body".into()));
    }

    #[test]
    fn the_escape_is_found_wherever_it_is_and_in_any_case() {
        assert!(may_escape_nul(br#"\u0000"#));
        assert!(may_escape_nul(br#"{"a": "x\U0000"}"#));
        assert!(may_escape_nul(br#"\\u0000"#));
        assert!(!may_escape_nul(br#"{"a": "\u000"}"#));
        assert!(!may_escape_nul(br#"{"a": "\n\t\u0001 u0000"}"#));
        assert!(!may_escape_nul(b"\\"));
        assert!(!may_escape_nul(b""));
        // The escape at the very end, and cut off by the end.
        assert!(may_escape_nul(b"xx\\u0000"));
        assert!(!may_escape_nul(b"xx\\u000"));
    }

    #[test]
    fn a_nul_in_a_query_parameter_is_named() {
        assert_eq!(
            nul_query_parameter("patient=a%00b&x=1"),
            Some("patient".into())
        );
        assert_eq!(nul_query_parameter("patient=ab&limit=5"), None);
    }
}
