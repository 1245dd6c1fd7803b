//! Where to send the visitor after signing in: the `next` parameter, and
//! why it is only ever a path on this site.
//!
//! `/login?next=/profile` is convenient, and a classic open redirect: a link
//! to `/login?next=https://evil.example` on our domain would bounce a
//! freshly signed-in user to a look-alike site. Browsers are generous about
//! what they take as "another host": `//evil`, `/\evil`, `\\evil`, and even
//! `/<tab>/evil` (tabs and newlines are stripped from URLs) all leave the
//! site. So instead of trying to spot bad values, [`safe_next`] accepts only
//! one shape: a single `/` followed by printable ASCII without backslashes.
//! Anything else falls back to the profile page.

use axum::http::Uri;

/// Where a signed-in visitor goes when `next` is missing or refused.
pub const DEFAULT_AFTER_LOGIN: &str = "/profile";

/// Longest `next` accepted; real paths of this site are far shorter.
const MAX_NEXT_LEN: usize = 1024;

/// `next` if it is a local path that is safe to put in a `Location` header.
pub fn safe_next(next: &str) -> Option<&str> {
    let bytes = next.as_bytes();
    let local = bytes.first() == Some(&b'/') && !matches!(bytes.get(1), Some(b'/' | b'\\'));
    let printable = bytes
        .iter()
        .all(|b| (0x21..=0x7e).contains(b) && *b != b'\\');
    (local && printable && next.len() <= MAX_NEXT_LEN).then_some(next)
}

/// Where to go after signing in, given a possibly missing or hostile `next`.
pub fn after_login(next: Option<&str>) -> &str {
    next.and_then(safe_next).unwrap_or(DEFAULT_AFTER_LOGIN)
}

/// The login page, remembering `uri` (the page that needed a session) as
/// `next` when it is a safe local path.
pub fn login_url_for(uri: &Uri) -> String {
    let wanted = uri.path_and_query().map_or("/", |pq| pq.as_str());
    match safe_next(wanted) {
        Some(next) => {
            let encoded: String = form_urlencoded::byte_serialize(next.as_bytes()).collect();
            format!("/login?next={encoded}")
        }
        None => "/login".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_pass() {
        let accepted = ["/", "/profile", "/profile?tab=1#x", "/a/b%2F/c"];
        for next in accepted {
            assert_eq!(safe_next(next), Some(next), "{next:?} should pass");
        }
        let refused = [
            "",
            "profile",
            "//evil.example",
            "//evil.example/profile",
            "/\\evil.example",
            "\\\\evil.example",
            "/profile\\..\\x",
            "http://evil.example",
            "https://evil.example/",
            "javascript:alert(1)",
            "/\t/evil.example",
            "/\n/evil.example",
            "/ /evil.example",
            "/prof\u{0}ile",
            "/café",
            "\u{2215}\u{2215}evil.example",
        ];
        for next in refused {
            assert_eq!(safe_next(next), None, "{next:?} should be refused");
        }
        assert_eq!(safe_next(&format!("/{}", "a".repeat(MAX_NEXT_LEN))), None);
    }

    #[test]
    fn refused_or_missing_next_falls_back_to_the_profile() {
        assert_eq!(after_login(None), "/profile");
        assert_eq!(after_login(Some("//evil.example")), "/profile");
        assert_eq!(after_login(Some("/elsewhere")), "/elsewhere");
    }

    #[test]
    fn login_url_remembers_the_page_encoded() {
        let uri: Uri = "/profile".parse().expect("valid");
        assert_eq!(login_url_for(&uri), "/login?next=%2Fprofile");
        let uri: Uri = "/profile?tab=a&b=c".parse().expect("valid");
        assert_eq!(
            login_url_for(&uri),
            "/login?next=%2Fprofile%3Ftab%3Da%26b%3Dc"
        );
        let uri: Uri = "http://host//evil".parse().expect("valid");
        assert_eq!(login_url_for(&uri), "/login");
    }
}
