//! Webhook values an administrator enters: the target URL (the bucket endpoint address
//! rules, since the server itself connects to it) and the events it receives.

use super::FieldError;
use super::bucket::{EndpointPolicy, check_host, check_resolved};

/// Longest URL accepted: enough for any real receiver, short enough for a log line.
const MAX_URL_LEN: usize = 2000;

/// What a webhook is told about. The names are the `type` of the JSON body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WebhookEvent {
    UploadCompleted,
    BatchCompleted,
    RequestReceived,
    UploadQuarantined,
}

impl WebhookEvent {
    pub const ALL: [Self; 4] = [
        Self::UploadCompleted,
        Self::BatchCompleted,
        Self::RequestReceived,
        Self::UploadQuarantined,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::UploadCompleted => "upload.completed",
            Self::BatchCompleted => "batch.completed",
            Self::RequestReceived => "request.received",
            Self::UploadQuarantined => "upload.quarantined",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.as_str() == raw.trim())
    }

    /// For the admin form.
    pub fn describe(self) -> &'static str {
        match self {
            Self::UploadCompleted => "a file is stored (and found clean, when scanning is on)",
            Self::BatchCompleted => "a folder or CD sent at once is finished",
            Self::RequestReceived => "files arrive through an upload request",
            Self::UploadQuarantined => "a file is quarantined by the virus scanner",
        }
    }
}

/// A non-empty set of events, stored as their names joined by commas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEvents(Vec<WebhookEvent>);

impl WebhookEvents {
    /// The events named in `raw` (form checkboxes); at least one.
    pub fn parse<'a>(raw: impl IntoIterator<Item = &'a str>) -> Result<Self, FieldError> {
        let mut events = Vec::new();
        for name in raw {
            let event = WebhookEvent::parse(name)
                .ok_or_else(|| FieldError::new("events", "names an event medport does not send"))?;
            if !events.contains(&event) {
                events.push(event);
            }
        }
        if events.is_empty() {
            return Err(FieldError::new("events", "choose at least one event"));
        }
        // Stored in one order, whatever order the form sent them in.
        events.sort_by_key(|e| WebhookEvent::ALL.iter().position(|a| a == e));
        Ok(Self(events))
    }

    /// The stored form, read back (names medport no longer sends are dropped).
    pub fn from_db(stored: &str) -> Self {
        Self(stored.split(',').filter_map(WebhookEvent::parse).collect())
    }

    pub fn to_db(&self) -> String {
        self.0
            .iter()
            .map(|e| e.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn contains(&self, event: WebhookEvent) -> bool {
        self.0.contains(&event)
    }

    pub fn iter(&self) -> impl Iterator<Item = WebhookEvent> + '_ {
        self.0.iter().copied()
    }
}

/// A URL medport may POST events to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookUrl(url::Url);

impl WebhookUrl {
    /// Checks the URL itself; [`WebhookUrl::check_resolved`] checks where its name points.
    pub fn parse(raw: &str, policy: EndpointPolicy) -> Result<Self, FieldError> {
        let err = |m: &str| Err(FieldError::new("url", m));
        let raw = raw.trim();
        if raw.len() > MAX_URL_LEN {
            return err("is too long (at most 2000 characters)");
        }
        let Ok(url) = url::Url::parse(raw) else {
            return err("must be a URL such as https://hooks.example.org/medport");
        };
        if !matches!(url.scheme(), "https" | "http") {
            return err("must start with https://");
        }
        if !url.username().is_empty() || url.password().is_some() {
            return err(
                "must not contain a user name or password; the signature proves who sent it",
            );
        }
        if url.fragment().is_some() {
            return err("must not contain a #fragment");
        }
        check_host(&url, policy).map_err(|m| FieldError::new("url", m))?;
        Ok(Self(url))
    }

    /// A URL read back from our own database (checked when it was saved, and again by the
    /// client at each connection).
    pub fn from_db(stored: &str) -> Option<Self> {
        url::Url::parse(stored).ok().map(Self)
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The host alone, for the audit trail (a path or query may hold a receiver's token).
    pub fn host(&self) -> &str {
        self.0.host_str().unwrap_or("")
    }

    /// Resolves the host and checks every address (a name may point at a forbidden one).
    pub async fn check_resolved(&self, policy: EndpointPolicy) -> Result<(), FieldError> {
        check_resolved(&self.0, policy)
            .await
            .map_err(|m| FieldError::new("url", m))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STRICT: EndpointPolicy = EndpointPolicy::STRICT;
    const LOOPBACK_OK: EndpointPolicy = EndpointPolicy::LOOPBACK_OK;

    #[test]
    fn webhook_urls_follow_the_bucket_endpoint_address_rules() {
        for ok in [
            "https://hooks.example.org/medport?token=abc",
            "https://10.0.0.5:8443/in",
        ] {
            assert!(WebhookUrl::parse(ok, STRICT).is_ok(), "{ok}");
        }
        for (bad, why) in [
            ("http://169.254.169.254/latest/meta-data", "metadata"),
            ("https://metadata.google.internal/x", "metadata"),
            ("https://[fd00:ec2::254]/", "metadata"),
            ("https://[::ffff:169.254.169.254]/", "metadata"),
            ("https://100.100.100.200/", "metadata"),
            ("https://100.64.1.1/", "shared range"),
            ("https://169.254.10.10/", "link-local"),
            ("http://127.0.0.1:9000/hook", "this server"),
            ("https://localhost/hook", "this server"),
            ("http://hooks.example.org/", "https"),
            ("https://user:pw@hooks.example.org/", "user name"),
            ("ftp://hooks.example.org/", "https"),
            ("https://hooks.example.org/#x", "fragment"),
        ] {
            let e = WebhookUrl::parse(bad, STRICT).unwrap_err();
            assert_eq!(e.field, "url");
            assert!(e.message.contains(why), "{bad}: {}", e.message);
        }
        assert!(WebhookUrl::parse("http://127.0.0.1:9000/hook", LOOPBACK_OK).is_ok());
        let long = format!("https://hooks.example.org/{}", "a".repeat(2000));
        assert!(WebhookUrl::parse(&long, STRICT).is_err());
    }

    #[test]
    fn events_are_a_non_empty_set_in_one_order() {
        let e =
            WebhookEvents::parse(["upload.quarantined", "upload.completed", "upload.completed"])
                .unwrap();
        assert_eq!(e.to_db(), "upload.completed,upload.quarantined");
        assert_eq!(WebhookEvents::from_db(&e.to_db()), e);
        assert!(e.contains(WebhookEvent::UploadQuarantined));
        assert!(!e.contains(WebhookEvent::BatchCompleted));
        assert!(WebhookEvents::parse([]).is_err());
        assert!(WebhookEvents::parse(["upload.deleted"]).is_err());
    }
}
