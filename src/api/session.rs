//! A browser's session with the control plane: the dashboard link `/?token=…` (as Jupyter prints one) puts
//! the token into a cookie (`HttpOnly`, `SameSite=Strict`), and the control plane then accepts the cookie
//! in place of an `Authorization` header — but for a request that changes state only when it comes from
//! the page's own origin. `SameSite` is decided per *site*, and every port of `127.0.0.1` is one site: a page
//! served by another local program could otherwise post a form here with the cookie attached. The browser
//! names the origin of every such request (`Origin`, `Sec-Fetch-Site`), so a cookie-carrying `POST`, `PUT`,
//! `PATCH` or `DELETE` whose origin is not this server's own is refused with 403. No CORS header is ever
//! sent, so other origins cannot read answers either.

use axum::http::{HeaderMap, HeaderValue, Method, header};

/// The cookie the token is kept in.
pub const COOKIE: &str = "chaoslab_token";

/// The `Set-Cookie` value that keeps `token` for the browser session.
pub fn set_cookie(token: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict")).ok()
}

/// The token the request's cookie carries, if any (the last one when a cookie is repeated).
pub fn token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim().to_owned())
        .rfind(|value| !value.is_empty())
}

/// Whether a request may use the cookie: any safe method, and an unsafe one only from this server's origin.
pub fn same_origin(method: &Method, headers: &HeaderMap) -> Result<(), String> {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(());
    }
    let fetch_site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
    if let Some(site) = fetch_site
        && site != "same-origin"
    {
        return Err(format!("cross-origin request refused (Sec-Fetch-Site: {site})"));
    }
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
    match headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        Some(origin) => {
            let own = origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://"));
            if own.is_some_and(|o| !host.is_empty() && o.eq_ignore_ascii_case(host)) {
                Ok(())
            } else {
                Err(format!("cross-origin request refused (Origin {origin} is not this server's)"))
            }
        }
        None if fetch_site == Some("same-origin") => Ok(()),
        None => Err("a request that changes state with the session cookie must say its Origin".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn the_cookie_is_found_among_others() {
        let h = headers(&[("cookie", "a=1; chaoslab_token=abc ; b=2")]);
        assert_eq!(token(&h).as_deref(), Some("abc"));
        assert_eq!(token(&headers(&[("cookie", "a=1")])), None);
        assert_eq!(token(&headers(&[("cookie", "chaoslab_token=")])), None);
        let v = set_cookie("abc").unwrap();
        assert_eq!(v.to_str().unwrap(), "chaoslab_token=abc; Path=/; HttpOnly; SameSite=Strict");
    }

    #[test]
    fn unsafe_methods_need_the_servers_own_origin() {
        let own = headers(&[("host", "127.0.0.1:8080"), ("origin", "http://127.0.0.1:8080")]);
        assert!(same_origin(&Method::POST, &own).is_ok());
        let other = headers(&[("host", "127.0.0.1:8080"), ("origin", "http://127.0.0.1:9999")]);
        assert!(same_origin(&Method::DELETE, &other).unwrap_err().contains("not this server's"));
        assert!(same_origin(&Method::GET, &other).is_ok(), "reads are not refused: answers stay unreadable");
        let none = headers(&[("host", "127.0.0.1:8080")]);
        assert!(same_origin(&Method::POST, &none).unwrap_err().contains("Origin"));
        let site = headers(&[("host", "h"), ("sec-fetch-site", "same-site"), ("origin", "http://h")]);
        assert!(same_origin(&Method::POST, &site).unwrap_err().contains("Sec-Fetch-Site"));
        let fetch = headers(&[("host", "h"), ("sec-fetch-site", "same-origin")]);
        assert!(same_origin(&Method::PUT, &fetch).is_ok());
    }
}
