//! A browser's HTTP side, for sign-in tests without a browser: reqwest without automatic
//! redirects, and a cookie store kept here (RFC 6265 as browsers apply it to these tests:
//! cookies are per host, not per port, sent when the request path is within the cookie's `Path`,
//! removed by `Max-Age=0`, dropped after `Max-Age`). Each answer's `Set-Cookie` headers are kept
//! parsed, so that a test can check a cookie's attributes.

use std::time::{Duration, Instant};

use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::{Method, StatusCode};

/// A `Set-Cookie` header, parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct SetCookie {
    pub name: String,
    pub value: String,
    pub path: Option<String>,
    pub max_age: Option<i64>,
    pub http_only: bool,
    pub secure: bool,
    pub same_site: Option<String>,
    /// The header as sent.
    pub raw: String,
}

impl SetCookie {
    pub fn parse(raw: &str) -> Option<SetCookie> {
        let mut parts = raw.split(';');
        let (name, value) = parts.next()?.trim().split_once('=')?;
        let mut cookie = SetCookie {
            name: name.to_string(),
            value: value.to_string(),
            path: None,
            max_age: None,
            http_only: false,
            secure: false,
            same_site: None,
            raw: raw.to_string(),
        };
        for attribute in parts {
            let (key, value) = match attribute.trim().split_once('=') {
                Some((k, v)) => (k.trim(), Some(v.trim())),
                None => (attribute.trim(), None),
            };
            match (key.to_ascii_lowercase().as_str(), value) {
                ("path", Some(v)) => cookie.path = Some(v.to_string()),
                ("max-age", Some(v)) => cookie.max_age = v.parse().ok(),
                ("httponly", None) => cookie.http_only = true,
                ("secure", None) => cookie.secure = true,
                ("samesite", Some(v)) => cookie.same_site = Some(v.to_string()),
                _ => {}
            }
        }
        Some(cookie)
    }
}

struct Stored {
    host: String,
    cookie: SetCookie,
    until: Option<Instant>,
}

/// One answer, read whole.
#[derive(Debug)]
pub struct Answer {
    pub url: String,
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub set_cookies: Vec<SetCookie>,
    pub body: String,
}

impl Answer {
    pub fn location(&self) -> Option<&str> {
        self.headers.get(LOCATION).and_then(|v| v.to_str().ok())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }

    pub fn set_cookie(&self, name: &str) -> Option<&SetCookie> {
        self.set_cookies.iter().find(|c| c.name == name)
    }

    pub fn content_type(&self) -> &str {
        self.headers
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

/// A browser: an HTTP client and its cookies.
pub struct Browser {
    http: reqwest::Client,
    jar: Vec<Stored>,
}

impl Default for Browser {
    fn default() -> Self {
        Browser::new()
    }
}

fn path_matches(request: &str, cookie: &str) -> bool {
    request == cookie
        || (request.starts_with(cookie)
            && (cookie.ends_with('/') || request[cookie.len()..].starts_with('/')))
}

impl Browser {
    pub fn new() -> Browser {
        Browser {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("an HTTP client"),
            jar: Vec::new(),
        }
    }

    /// The value of cookie `name` the browser holds for `host`, if any.
    pub fn cookie(&self, host: &str, name: &str) -> Option<String> {
        self.jar
            .iter()
            .find(|s| s.host == host && s.cookie.name == name)
            .map(|s| s.cookie.value.clone())
    }

    /// Sets a cookie by hand (a test that replays a value).
    pub fn put_cookie(&mut self, host: &str, name: &str, value: &str, path: &str) {
        self.store(
            host,
            SetCookie::parse(&format!("{name}={value}; Path={path}")).expect("a cookie"),
        );
    }

    fn store(&mut self, host: &str, cookie: SetCookie) {
        let path = cookie.path.clone().unwrap_or_else(|| "/".into());
        self.jar.retain(|s| {
            !(s.host == host
                && s.cookie.name == cookie.name
                && s.cookie.path.as_deref().unwrap_or("/") == path)
        });
        if cookie.max_age.is_some_and(|a| a <= 0) {
            return;
        }
        let until = cookie
            .max_age
            .map(|a| Instant::now() + Duration::from_secs(a.unsigned_abs()));
        self.jar.push(Stored {
            host: host.to_string(),
            cookie,
            until,
        });
    }

    /// One request (no redirect followed), with the cookies that apply and `headers`.
    pub async fn request(&mut self, method: Method, url: &str, headers: &[(&str, &str)]) -> Answer {
        self.send(method, url, headers, None).await
    }

    /// A request with a body.
    pub async fn send(
        &mut self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<(&str, String)>,
    ) -> Answer {
        let parsed = url::Url::parse(url).expect("an absolute URL");
        let host = parsed.host_str().expect("a host").to_string();
        let now = Instant::now();
        self.jar.retain(|s| s.until.is_none_or(|u| u > now));
        let cookies: Vec<String> = self
            .jar
            .iter()
            .filter(|s| {
                s.host == host
                    && path_matches(parsed.path(), s.cookie.path.as_deref().unwrap_or("/"))
                    && (!s.cookie.secure || parsed.scheme() == "https")
            })
            .map(|s| format!("{}={}", s.cookie.name, s.cookie.value))
            .collect();
        let mut req = self.http.request(method, url);
        if !cookies.is_empty() {
            req = req.header(COOKIE, cookies.join("; "));
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some((content_type, body)) = body {
            req = req
                .header(reqwest::header::CONTENT_TYPE, content_type)
                .body(body);
        }
        let res = req.send().await.expect("the server answers");
        let status = res.status();
        let headers = res.headers().clone();
        let set_cookies: Vec<SetCookie> = headers
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(SetCookie::parse)
            .collect();
        for c in &set_cookies {
            self.store(&host, c.clone());
        }
        let body = res.text().await.unwrap_or_default();
        Answer {
            url: url.to_string(),
            status,
            headers,
            set_cookies,
            body,
        }
    }

    pub async fn get(&mut self, url: &str) -> Answer {
        self.request(Method::GET, url, &[]).await
    }

    /// GETs `url` and follows redirects (at most 10), as a browser's navigation does: every
    /// answer on the way, the last one last.
    pub async fn navigate(&mut self, url: &str) -> Vec<Answer> {
        let mut hops = Vec::new();
        let mut next = url.to_string();
        for _ in 0..10 {
            let answer = self.get(&next).await;
            let location = answer.location().map(|l| {
                url::Url::parse(&next)
                    .and_then(|base| base.join(l))
                    .expect("a Location that resolves")
                    .to_string()
            });
            let redirect = answer.status.is_redirection();
            hops.push(answer);
            match location {
                Some(l) if redirect => next = l,
                _ => return hops,
            }
        }
        panic!("more than 10 redirects from {url}");
    }
}
