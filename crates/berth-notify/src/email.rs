use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use crate::channel::{Email, SmtpSecurity};
use crate::error::SendError;
use crate::message::{Message, truncate};
use crate::net::{error_chain, resolve_checked};
use crate::send::NotifyOptions;

/// Builds the mail and sends it over one SMTP session to the checked
/// address; the certificate is still verified against the host name.
pub(crate) async fn send(
    email: &Email,
    message: &Message,
    options: &NotifyOptions,
) -> Result<(), SendError> {
    let timeout = options.timeout;
    let host = &email.host.host;
    let port = email.host.port.unwrap_or(match email.security {
        SmtpSecurity::ImplicitTls => 465,
        SmtpSecurity::StartTls => 587,
        SmtpSecurity::Plain => 25,
    });
    let addrs = resolve_checked(host, port, options.allow_private, timeout).await?;

    let mut builder = lettre::Message::builder()
        .from(email.from.clone())
        .subject(truncate(&message.title, 200))
        .header(ContentType::TEXT_PLAIN);
    for to in &email.to {
        builder = builder.to(to.clone());
    }
    let text = format!(
        "{}\n\n-- \nberth · {} · {}\n",
        truncate(&message.plain_text(), 64 * 1024),
        message.event.as_str(),
        message.severity.as_str()
    );
    let mail = builder
        .body(text)
        .map_err(|e| SendError::BadEmail(e.to_string()))?;

    let tls_params = || {
        let tls_error = |e: lettre::transport::smtp::Error| SendError::Transport {
            host: host.clone(),
            reason: error_chain(&e),
        };
        // The certificate is checked against the channel's host name even
        // though the connection goes to the checked IP address.
        let mut params = TlsParameters::builder(host.clone());
        if let Some(pem) = &options.extra_ca_pem {
            params = params
                .add_root_certificate(Certificate::from_pem(pem.as_bytes()).map_err(tls_error)?);
        }
        params.build().map_err(tls_error)
    };
    let tls = match email.security {
        SmtpSecurity::ImplicitTls => Tls::Wrapper(tls_params()?),
        SmtpSecurity::StartTls => Tls::Required(tls_params()?),
        SmtpSecurity::Plain => Tls::None,
    };
    let ip = first_reachable(host, &addrs, timeout).await?;
    let mut transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(ip.to_string())
        .port(port)
        .tls(tls)
        .timeout(Some(timeout));
    if let Some((user, password)) = &email.credentials {
        transport = transport.credentials(Credentials::new(user.clone(), password.clone()));
    }
    let transport = transport.build();
    match tokio::time::timeout(timeout * 2, transport.send(mail)).await {
        Err(_) => Err(SendError::TimedOut {
            host: host.clone(),
            timeout,
        }),
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) if e.is_timeout() => Err(SendError::TimedOut {
            host: host.clone(),
            timeout,
        }),
        Ok(Err(e)) => Err(SendError::Smtp {
            answer: error_chain(&e),
            permanent: e.is_permanent(),
        }),
    }
}

/// lettre connects to one address; a name such as `localhost` often
/// resolves to `::1` and `127.0.0.1` with the server on only one, so take
/// the first checked address that accepts a connection.
async fn first_reachable(
    host: &str,
    addrs: &[SocketAddr],
    timeout: Duration,
) -> Result<IpAddr, SendError> {
    let mut last = String::new();
    for addr in addrs {
        match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr)).await {
            Ok(Ok(_probe)) => return Ok(addr.ip()),
            Ok(Err(e)) => last = format!("{addr}: {e}"),
            Err(_) => last = format!("{addr}: no answer within {timeout:?}"),
        }
    }
    Err(SendError::Transport {
        host: host.to_owned(),
        reason: last,
    })
}
