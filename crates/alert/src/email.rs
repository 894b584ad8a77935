//! The email receiver: a `multipart/alternative` message (the `text`
//! part when configured, the `html` part, default template otherwise)
//! sent over SMTP with Alertmanager's rules: port 465 is TLS from the
//! start; elsewhere STARTTLS is used when the server offers it and
//! required when `require_tls` is set; `auth_username` enables PLAIN or
//! LOGIN authentication. Headers are templates; `Subject` defaults to
//! `email.default.subject`, `From` and `To` come from the config.

use std::time::Duration;

use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, Mailboxes, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::notify::{Data, SendError, expand};
use crate::template::NotificationTemplates;
use config::alertmanager::EmailConfig;

fn fail(message: impl Into<String>) -> SendError {
    SendError {
        message: message.into(),
        retry: false,
    }
}

/// Builds the message for a notification.
pub fn build_message(
    config: &EmailConfig,
    data: &Data,
    templates: &NotificationTemplates,
) -> Result<Message, SendError> {
    let value = crate::template::data_value(data);
    let to_text = expand(templates, &config.to, &value)?;
    let from_text = expand(templates, &config.from, &value)?;
    let to: Mailboxes = to_text
        .parse()
        .map_err(|e| fail(format!("parsing to addresses {to_text:?}: {e}")))?;
    let from: Mailbox = from_text
        .parse()
        .map_err(|e| fail(format!("parsing from address {from_text:?}: {e}")))?;
    let subject_template = config
        .headers
        .get("Subject")
        .map(String::as_str)
        .unwrap_or(r#"{{ template "email.default.subject" . }}"#);
    let subject = expand(templates, subject_template, &value)?;
    let mut builder = Message::builder()
        .from(from)
        .subject(subject)
        .message_id(None);
    for mailbox in to {
        builder = builder.to(mailbox);
    }
    let mut body = MultiPart::alternative().build();
    if let Some(text) = &config.text {
        body = body.singlepart(SinglePart::plain(expand(templates, text, &value)?));
    }
    if let Some(html) = &config.html {
        body = body.singlepart(SinglePart::html(expand(templates, html, &value)?));
    }
    let mut message = builder
        .multipart(body)
        .map_err(|e| fail(format!("building the email: {e}")))?;
    for (name, template) in &config.headers {
        if matches!(name.as_str(), "Subject" | "From" | "To") {
            continue;
        }
        let header = HeaderName::new_from_ascii(name.clone())
            .map_err(|_| fail(format!("invalid header name {name:?}")))?;
        let text = expand(templates, template, &value)?;
        message
            .headers_mut()
            .insert_raw(HeaderValue::new(header, text));
    }
    Ok(message)
}

/// The TLS settings for the SMTP server at `host`: `tls_config`'s CA
/// (trusted alone when set, as Alertmanager does), client certificate,
/// `server_name`, `insecure_skip_verify` and `min_version`.
fn tls_parameters(host: &str, tls: &config::http::TlsConfig) -> Result<TlsParameters, String> {
    use lettre::transport::smtp::client::{Certificate, CertificateStore, Identity, TlsVersion};
    let name = tls.server_name.clone().unwrap_or_else(|| host.to_string());
    let mut builder = TlsParameters::builder(name)
        .dangerous_accept_invalid_certs(tls.insecure_skip_verify)
        .dangerous_accept_invalid_hostnames(tls.insecure_skip_verify);
    if let Some(pem) = config::client::ca_pem(tls)? {
        let certificate =
            Certificate::from_pem(&pem).map_err(|e| format!("tls_config: the CA: {e}"))?;
        builder = builder
            .certificate_store(CertificateStore::None)
            .add_root_certificate(certificate);
    }
    if let Some(pair) = config::client::cert_and_key_pem(tls)? {
        let identity = Identity::from_pem(&pair.cert, &pair.key)
            .map_err(|e| format!("tls_config: the client certificate and key: {e}"))?;
        builder = builder.identify_with(identity);
    }
    // rustls speaks TLS 1.2 and 1.3, so a lower floor is 1.2.
    if tls.min_version == Some(config::http::TlsVersion::Tls13) {
        builder = builder.set_min_tls_version(TlsVersion::Tlsv13);
    }
    builder.build().map_err(|e| format!("TLS setup: {e}"))
}

/// Sends a notification by email.
pub async fn send(
    config: &EmailConfig,
    data: &Data,
    templates: &NotificationTemplates,
) -> Result<(), SendError> {
    let message = build_message(config, data, templates)?;
    let (host, port) = match config.smarthost.rsplit_once(':') {
        Some((host, port)) => (
            host,
            port.parse::<u16>()
                .map_err(|_| fail(format!("invalid port in {:?}", config.smarthost)))?,
        ),
        None => return Err(fail(format!("invalid smarthost {:?}", config.smarthost))),
    };
    let parameters = tls_parameters(host, &config.tls_config).map_err(fail)?;
    let tls = if port == 465 {
        Tls::Wrapper(parameters)
    } else if config.require_tls {
        Tls::Required(parameters)
    } else {
        Tls::Opportunistic(parameters)
    };
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
        .port(port)
        .tls(tls)
        .hello_name(ClientId::Domain(config.hello.clone()))
        .timeout(Some(Duration::from_secs(30)));
    if let Some(username) = &config.auth_username
        && !username.is_empty()
    {
        builder = builder
            .credentials(Credentials::new(
                username.clone(),
                config.auth_password.clone().unwrap_or_default(),
            ))
            .authentication(vec![Mechanism::Plain, Mechanism::Login]);
    }
    let transport = builder.build();
    transport
        .send(message)
        .await
        .map(|_| ())
        .map_err(|e| SendError {
            retry: !e.is_permanent(),
            message: format!("sending email via {}: {e}", config.smarthost),
        })
}
