//! CORS, so that web pages served from another origin can call the services with gRPC-Web: which
//! origins may (configured, none by default), which request headers they may send and which
//! response headers their scripts may read. The layer sits outside authentication and answers
//! preflights itself: a browser sends a preflight without the page's credentials.

use std::time::Duration;

use clap::Args;
use http::{HeaderName, HeaderValue, Method};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// Headers a gRPC-Web client sends besides the CORS-safelisted ones: the token, the workspace some
/// clients still name, the gRPC-Web marker and user agent, the deadline and the content type
/// (`application/grpc-web+proto` is not a safelisted one).
const ALLOWED_HEADERS: [&str; 6] = [
    "authorization",
    "x-workspace-id",
    "x-grpc-web",
    "x-user-agent",
    "grpc-timeout",
    "content-type",
];

/// Headers a page's script may read: the status of a call answered without a body comes in
/// headers rather than trailers (a "trailers-only" answer), and a browser hides every response
/// header not exposed here.
const EXPOSED_HEADERS: [&str; 3] = ["grpc-status", "grpc-message", "grpc-status-details-bin"];

/// How long a browser may reuse a preflight's answer. Chromium caps it at two hours.
const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(2 * 3600);

/// Which web origins may call the services from a browser.
#[derive(Debug, Clone, Default, Args)]
pub struct CorsConfig {
    /// Web origins whose pages may call this service from a browser (gRPC-Web), comma-separated,
    /// each exactly as browsers send it (`https://app.example.com`, `http://localhost:5173`), or
    /// `*` for any. None by default: browsers on other origins are refused.
    #[arg(
        long,
        env = "CHARLA_CORS_ALLOWED_ORIGINS",
        value_parser = AllowedOrigins::parse,
        default_value = "",
        hide_default_value = true
    )]
    pub cors_allowed_origins: AllowedOrigins,
}

/// The allowed origins: any, or these exactly (none when empty).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedOrigins {
    any: bool,
    exact: Vec<HeaderValue>,
}

impl AllowedOrigins {
    /// Any origin (`*`).
    pub fn any() -> Self {
        Self {
            any: true,
            exact: Vec::new(),
        }
    }

    /// Reads a comma-separated list of origins or `*`; empty entries (an empty setting, a trailing
    /// comma) allow nothing. Anything beyond `scheme://host[:port]` (a path, even a trailing `/`)
    /// is refused: a browser never sends one, so such an entry would silently match nothing.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut origins = Self::default();
        for entry in text
            .split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
        {
            if entry == "*" {
                origins.any = true;
            } else {
                origins.exact.push(parse_origin(entry)?);
            }
        }
        Ok(origins)
    }
}

impl CorsConfig {
    /// Allows every origin (development mode).
    pub fn any_origin() -> Self {
        Self {
            cors_allowed_origins: AllowedOrigins::any(),
        }
    }

    /// The layer that answers preflights and adds the CORS headers to responses.
    pub fn layer(&self) -> CorsLayer {
        let origins = &self.cors_allowed_origins;
        let allow = if origins.any {
            AllowOrigin::any()
        } else {
            AllowOrigin::list(origins.exact.iter().cloned())
        };
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::POST, Method::OPTIONS])
            .allow_headers(ALLOWED_HEADERS.map(HeaderName::from_static))
            .expose_headers(EXPOSED_HEADERS.map(HeaderName::from_static))
            .max_age(PREFLIGHT_MAX_AGE)
    }
}

/// One origin, in lower case as browsers send it.
fn parse_origin(text: &str) -> Result<HeaderValue, String> {
    let refused =
        || format!("`{text}` is not an origin: write scheme://host[:port] without a path, or `*`");
    let uri: http::Uri = text.parse().map_err(|_| refused())?;
    let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
        return Err(refused());
    };
    let origin = format!("{scheme}://{authority}").to_ascii_lowercase();
    if !text.eq_ignore_ascii_case(&origin) || authority.as_str().contains('@') {
        return Err(refused());
    }
    HeaderValue::from_str(&origin).map_err(|_| refused())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_read_exactly_and_in_lower_case() {
        assert_eq!(
            AllowedOrigins::parse(" https://App.Example.com:8443 ,http://localhost:5173,"),
            Ok(AllowedOrigins {
                any: false,
                exact: vec![
                    HeaderValue::from_static("https://app.example.com:8443"),
                    HeaderValue::from_static("http://localhost:5173"),
                ],
            })
        );
        assert!(AllowedOrigins::parse("http://a.example, *").unwrap().any);
        assert_eq!(AllowedOrigins::parse(""), Ok(AllowedOrigins::default()));
    }

    #[test]
    fn entries_no_browser_sends_are_refused_naming_them() {
        for text in [
            "https://app.example.com/",
            "https://app.example.com/page",
            "app.example.com",
            "https://user@app.example.com",
        ] {
            let error = AllowedOrigins::parse(&format!("http://ok.example,{text}")).unwrap_err();
            assert!(error.contains(&format!("`{text}`")), "{error}");
        }
    }
}
