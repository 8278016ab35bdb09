//! The dashboard's files, compiled into the binary from `services/lrt-server/dashboard/`: one
//! HTML document, one style sheet, JavaScript modules (no framework, no build step; charts are
//! inline SVG drawn by `charts.js`). Each is served with an `ETag` (a SHA-256 prefix of its
//! bytes) and a short `max-age`, so a new release is picked up within minutes and revalidation
//! is cheap.

use std::sync::LazyLock;

use sha2::{Digest, Sha256};

/// The page.
pub const INDEX_HTML: &str = include_str!("../../../dashboard/index.html");

/// One embedded file.
pub struct Asset {
    pub name: &'static str,
    pub content_type: &'static str,
    pub bytes: &'static [u8],
}

const JS: &str = "text/javascript; charset=utf-8";

static ASSETS: &[Asset] = &[
    Asset {
        name: "dashboard.css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("../../../dashboard/dashboard.css"),
    },
    Asset {
        name: "app.js",
        content_type: JS,
        bytes: include_bytes!("../../../dashboard/app.js"),
    },
    Asset {
        name: "api.js",
        content_type: JS,
        bytes: include_bytes!("../../../dashboard/api.js"),
    },
    Asset {
        name: "charts.js",
        content_type: JS,
        bytes: include_bytes!("../../../dashboard/charts.js"),
    },
    Asset {
        name: "dom.js",
        content_type: JS,
        bytes: include_bytes!("../../../dashboard/dom.js"),
    },
    Asset {
        name: "overview.js",
        content_type: JS,
        bytes: include_bytes!("../../../dashboard/overview.js"),
    },
    Asset {
        name: "evaluation.js",
        content_type: JS,
        bytes: include_bytes!("../../../dashboard/evaluation.js"),
    },
    Asset {
        name: "validation.js",
        content_type: JS,
        bytes: include_bytes!("../../../dashboard/validation.js"),
    },
    Asset {
        name: "favicon.svg",
        content_type: "image/svg+xml",
        bytes: include_bytes!("../../../dashboard/favicon.svg"),
    },
];

/// The ETags, computed once.
static ETAGS: LazyLock<Vec<String>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|a| {
            let digest = Sha256::digest(a.bytes);
            let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
            format!("\"{hex}\"")
        })
        .collect()
});

impl Asset {
    pub fn etag(&self) -> String {
        ASSETS
            .iter()
            .position(|a| a.name == self.name)
            .map(|i| ETAGS[i].clone())
            .unwrap_or_default()
    }
}

/// The file named `name`, if embedded.
pub fn find(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every file the page or a module names is embedded, and nothing is loaded from elsewhere
    /// (no CDN, no web font, no inline script or style the CSP would block).
    #[test]
    fn the_page_loads_only_embedded_files() {
        let mut texts: Vec<&str> = vec![INDEX_HTML];
        texts.extend(
            ASSETS
                .iter()
                .filter(|a| a.name.ends_with(".js") || a.name.ends_with(".css"))
                .map(|a| std::str::from_utf8(a.bytes).expect("UTF-8")),
        );
        for text in &texts {
            assert!(
                !text.contains("http://") && !text.contains("https://")
                    || text.contains("http://www.w3.org/2000/svg"),
                "an absolute URL in an asset"
            );
            assert!(!text.contains("<style"), "inline style element");
            assert!(!text.contains(" style=\""), "inline style attribute");
            assert!(!text.contains("onclick="), "inline handler");
        }
        assert!(!INDEX_HTML.contains("<script>"), "inline script");
        for line in INDEX_HTML.lines() {
            for attr in ["src=\"/dashboard/assets/", "href=\"/dashboard/assets/"] {
                if let Some(rest) = line.split(attr).nth(1) {
                    let name = rest.split('"').next().expect("a name");
                    assert!(find(name).is_some(), "{name} is not embedded");
                }
            }
        }
        for a in ASSETS.iter().filter(|a| a.name.ends_with(".js")) {
            let text = std::str::from_utf8(a.bytes).expect("UTF-8");
            for line in text.lines().filter(|l| l.starts_with("import ")) {
                let name = line.rsplit("'./").next().and_then(|r| r.split('\'').next());
                let name = name.expect("a relative import");
                assert!(find(name).is_some(), "{}: {name} is not embedded", a.name);
            }
        }
    }

    #[test]
    fn etags_differ_per_file() {
        let tags: std::collections::HashSet<_> = ASSETS.iter().map(Asset::etag).collect();
        assert_eq!(tags.len(), ASSETS.len());
    }
}
