//! Handing one message to the SMTP server (lettre over tokio and rustls with the system's
//! roots). Each message is one connection: mail is rare, and a fresh connection never
//! carries a half-broken session into the next message. Every step of the exchange has a
//! deadline.

use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use secrecy::ExposeSecret;

use crate::config::{SmtpSettings, SmtpTls};

/// A message as the server receives it: text and HTML alternatives of one content.
pub struct Mail<'a> {
    pub to: &'a str,
    pub subject: &'a str,
    pub text: &'a str,
    pub html: &'a str,
}

/// Why a message was not accepted; short, and never holding a credential.
#[derive(Debug, thiserror::Error)]
pub enum SmtpError {
    /// The server could not be reached, or answered with an error (4xx or 5xx).
    #[error("{0}")]
    NotAccepted(String),
    /// The message itself cannot be built (an address the SMTP library refuses).
    #[error("{0}")]
    Unsendable(String),
}

pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl Mailer {
    /// `hello` is the name given in EHLO (the public host name, when there is one).
    pub fn new(
        settings: &SmtpSettings,
        hello: Option<&str>,
        timeout: Duration,
    ) -> Result<Self, SmtpError> {
        let server = &settings.server;
        let tls = TlsParameters::builder(server.host.clone())
            .build_rustls()
            .map_err(|e| SmtpError::Unsendable(format!("TLS: {e}")))?;
        let tls = match server.tls {
            SmtpTls::Implicit => Tls::Wrapper(tls),
            SmtpTls::Required => Tls::Required(tls),
            SmtpTls::Opportunistic => Tls::Opportunistic(tls),
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&server.host)
            .port(server.port)
            .tls(tls)
            .timeout(Some(timeout));
        if let Some(user) = &server.username {
            let password = server
                .password
                .as_ref()
                .map(|p| p.expose_secret().to_string())
                .unwrap_or_default();
            builder = builder.credentials(Credentials::new(user.clone(), password));
        }
        if let Some(name) = hello {
            builder = builder.hello_name(ClientId::Domain(name.to_string()));
        }
        let from = Mailbox::new(
            settings.from.name.clone(),
            settings
                .from
                .address
                .as_str()
                .parse()
                .map_err(|e| SmtpError::Unsendable(format!("sender address: {e}")))?,
        );
        Ok(Self {
            transport: builder.build(),
            from,
        })
    }

    /// Connects, greets, starts TLS and signs in as sending would, and sends no message.
    pub async fn probe(&self) -> Result<(), SmtpError> {
        match self.transport.test_connection().await {
            Ok(true) => Ok(()),
            Ok(false) => Err(SmtpError::NotAccepted(
                "the server did not answer NOOP".into(),
            )),
            Err(e) => Err(SmtpError::NotAccepted(short(&e))),
        }
    }

    pub async fn send(&self, mail: &Mail<'_>) -> Result<(), SmtpError> {
        let to = mail
            .to
            .parse()
            .map_err(|e| SmtpError::Unsendable(format!("recipient address: {e}")))?;
        let message = lettre::Message::builder()
            .from(self.from.clone())
            .to(Mailbox::new(None, to))
            .subject(mail.subject)
            .multipart(MultiPart::alternative_plain_html(
                mail.text.to_string(),
                mail.html.to_string(),
            ))
            .map_err(|e| SmtpError::Unsendable(format!("message: {e}")))?;
        self.transport
            .send(message)
            .await
            .map(drop)
            .map_err(|e| SmtpError::NotAccepted(short(&e)))
    }
}

/// The error and its causes, on one line, at most 200 characters.
fn short(e: &lettre::transport::smtp::Error) -> String {
    let mut text = crate::infra::http_client::describe(e);
    if text.chars().count() > 200 {
        text = text.chars().take(199).chain(['…']).collect();
    }
    text
}
