/// A same-site path to send the browser to after sign-in (`/login?next=...`). Anything that
/// could leave the site (`//evil`, `/\evil`, `https://...`) or smuggle control characters is
/// refused, so the login page cannot be used as an open redirect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalPath(String);

impl LocalPath {
    const MAX_LEN: usize = 2048;

    pub fn parse(raw: &str) -> Option<Self> {
        let ok = raw.starts_with('/')
            && !raw.starts_with("//")
            && !raw.starts_with("/\\")
            && raw.len() <= Self::MAX_LEN
            && !raw.chars().any(|c| c.is_control() || c == '\\');
        ok.then(|| Self(raw.to_string()))
    }

    /// `next` if it is a valid local path, else the start page.
    pub fn or_home(raw: Option<&str>) -> Self {
        raw.and_then(Self::parse)
            .unwrap_or_else(|| Self("/".into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_local_paths_only() {
        assert!(LocalPath::parse("/uploads?page=2").is_some());
        for bad in [
            "",
            "uploads",
            "//evil.example",
            "/\\evil.example",
            "https://evil.example",
            "/a\nb",
            "/a\\b",
            "\t/x",
        ] {
            assert!(LocalPath::parse(bad).is_none(), "{bad:?}");
        }
        assert!(LocalPath::parse(&format!("/{}", "a".repeat(3000))).is_none());
        assert_eq!(LocalPath::or_home(Some("//x")).as_str(), "/");
    }
}
