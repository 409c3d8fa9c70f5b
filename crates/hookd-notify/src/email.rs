//! Email over SMTP: one [`Mailer`] per configured server, a pool of connections, and
//! each [`Email`] sent with the `Message-ID` its caller chose (a retry of the same
//! step carries the same id, so a receiving system can drop the duplicate).
//!
//! The server is a URL (`smtp_url`):
//!
//! | URL | connection |
//! |---|---|
//! | `smtp://user:pass@host:587` | STARTTLS, **required** (the default: a server that does not offer it is refused) |
//! | `smtps://user:pass@host:465` | TLS from the first byte |
//! | `smtp://host:25?tls=opportunistic` | STARTTLS when offered, plain text otherwise |
//! | `smtp://127.0.0.1:2525?tls=none` | plain text (a local relay or a test server) |
//!
//! User name and password are percent-decoded; they never appear in `Debug`, errors
//! or logs.

use std::fmt;
use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use percent_encoding::percent_decode_str;

use crate::SendError;

pub use crate::ConfigError;

/// How the connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// STARTTLS, refused if the server does not offer it.
    StartTls,
    /// STARTTLS if offered.
    Opportunistic,
    /// TLS from the first byte (`smtps://`).
    Implicit,
    /// None (`?tls=none`).
    Plain,
}

/// One email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub subject: String,
    pub text: Option<String>,
    pub html: Option<String>,
    /// The id part of `Message-ID` (before `@`): the same for every try of one send.
    pub message_id: String,
}

/// Sends email through one SMTP server.
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    host: String,
    port: u16,
    security: Security,
}

impl fmt::Debug for Mailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the credentials.
        f.debug_struct("Mailer")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("from", &self.from.to_string())
            .finish()
    }
}

fn decoded(s: &str, what: &str) -> Result<String, ConfigError> {
    percent_decode_str(s)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| ConfigError(format!("smtp_url: the {what} is not UTF-8 once decoded")))
}

impl Mailer {
    /// A mailer for `url` sending as `from` (`Name <address>` or an address), giving
    /// up on a server after `timeout`.
    pub fn new(url: &str, from: &str, timeout: Duration) -> Result<Self, ConfigError> {
        // The URL is never echoed: it may hold a password.
        let parsed = url::Url::parse(url).map_err(|e| ConfigError(format!("smtp_url is not a URL ({e})")))?;
        let tls = parsed
            .query_pairs()
            .find(|(k, _)| k == "tls")
            .map(|(_, v)| v.into_owned());
        if parsed.query_pairs().any(|(k, _)| k != "tls") {
            return Err(ConfigError("smtp_url: the only query parameter is tls".into()));
        }
        let security = match (parsed.scheme(), tls.as_deref()) {
            ("smtps", None) => Security::Implicit,
            ("smtp", None | Some("required")) => Security::StartTls,
            ("smtp", Some("opportunistic")) => Security::Opportunistic,
            ("smtp", Some("none")) => Security::Plain,
            ("smtps", Some(_)) => {
                return Err(ConfigError("smtp_url: smtps:// is always TLS; drop ?tls=".into()));
            }
            ("smtp", Some(_)) => {
                return Err(ConfigError(
                    "smtp_url: tls is required, opportunistic or none".into(),
                ));
            }
            _ => return Err(ConfigError("smtp_url must start with smtp:// or smtps://".into())),
        };
        let host = parsed
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| ConfigError("smtp_url has no host".into()))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = parsed
            .port()
            .unwrap_or(if security == Security::Implicit { 465 } else { 587 });
        let from: Mailbox = from
            .parse()
            .map_err(|e| ConfigError(format!("smtp_from is not an address: {e}")))?;
        let params = || {
            TlsParameters::new(host.clone())
                .map_err(|e| ConfigError(format!("smtp_url: TLS for {host}: {e}")))
        };
        let tls = match security {
            Security::StartTls => Tls::Required(params()?),
            Security::Opportunistic => Tls::Opportunistic(params()?),
            Security::Implicit => Tls::Wrapper(params()?),
            Security::Plain => Tls::None,
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host.clone())
            .port(port)
            .tls(tls)
            .timeout(Some(timeout));
        if !parsed.username().is_empty() {
            let user = decoded(parsed.username(), "user name")?;
            let password = decoded(parsed.password().unwrap_or_default(), "password")?;
            builder = builder.credentials(Credentials::new(user, password));
        }
        Ok(Self {
            transport: builder.build(),
            from,
            host,
            port,
            security,
        })
    }

    pub fn security(&self) -> Security {
        self.security
    }

    /// The message as it would be sent (for tests and previews).
    pub fn build(&self, email: &Email) -> Result<Message, SendError> {
        let invalid = |what: &str, e: &dyn fmt::Display| SendError::Invalid(format!("{what}: {e}"));
        let domain = self.from.email.domain();
        let mut builder = Message::builder()
            .from(self.from.clone())
            .subject(email.subject.clone())
            .message_id(Some(format!("<{}@{domain}>", email.message_id)));
        if email.to.is_empty() {
            return Err(SendError::Invalid("an email needs at least one recipient".into()));
        }
        for to in &email.to {
            builder = builder.to(to.parse().map_err(|e| invalid(&format!("to {to:?}"), &e))?);
        }
        for cc in &email.cc {
            builder = builder.cc(cc.parse().map_err(|e| invalid(&format!("cc {cc:?}"), &e))?);
        }
        let message = match (&email.text, &email.html) {
            (Some(text), Some(html)) => {
                builder.multipart(MultiPart::alternative_plain_html(text.clone(), html.clone()))
            }
            (Some(text), None) => builder.header(ContentType::TEXT_PLAIN).body(text.clone()),
            (None, Some(html)) => builder.header(ContentType::TEXT_HTML).body(html.clone()),
            (None, None) => return Err(SendError::Invalid("an email needs text, html or both".into())),
        };
        message.map_err(|e| invalid("the message", &e))
    }

    /// Sends `email`.
    pub async fn send(&self, email: &Email) -> Result<(), SendError> {
        let message = self.build(email)?;
        match self.transport.send(message).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_permanent() => Err(SendError::Refused(format!(
                "the SMTP server refused the message: {e}"
            ))),
            Err(e) => Err(SendError::Transient(format!(
                "could not send through {}:{}: {e}",
                self.host, self.port
            ))),
        }
    }
}
