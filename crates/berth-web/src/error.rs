use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use berth_deploy::DeployError;
use berth_docker::DockerError;

use crate::forms::FieldErrors;
use crate::views;

/// Everything a handler can fail with, mapped to a status once, here.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Conflict(String),
    #[error("invalid input")]
    Invalid(FieldErrors),
    #[error("the form has expired or did not come from berth: reload the page and try again")]
    Csrf,
    #[error("authentication required")]
    Unauthorized,
    #[error("too many failed logins: wait a few minutes and try again")]
    TooManyAttempts,
    #[error("this API token is read-only: it may only make GET and HEAD requests")]
    ReadOnlyToken,
    #[error("{message}")]
    DockerUnavailable {
        message: String,
        hint: Option<String>,
    },
    /// Docker refused the action; its own message is the useful part.
    #[error("Docker: {0}")]
    Docker(String),
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl WebError {
    pub fn status_code(&self) -> StatusCode {
        match self {
            WebError::NotFound(_) => StatusCode::NOT_FOUND,
            WebError::Conflict(_) => StatusCode::CONFLICT,
            WebError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            WebError::Csrf => StatusCode::FORBIDDEN,
            WebError::Unauthorized => StatusCode::UNAUTHORIZED,
            WebError::TooManyAttempts => StatusCode::TOO_MANY_REQUESTS,
            WebError::ReadOnlyToken => StatusCode::FORBIDDEN,
            WebError::DockerUnavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            WebError::Docker(_) => StatusCode::BAD_GATEWAY,
            WebError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// What the user is told: never an internal cause.
    pub fn public_message(&self) -> String {
        match self {
            WebError::DockerUnavailable {
                message,
                hint: Some(hint),
            } => format!("{message}. {hint}"),
            other => other.to_string(),
        }
    }

    fn log(&self) {
        if let WebError::Internal(cause) = self {
            let mut chain = cause.to_string();
            let mut source = cause.source();
            while let Some(s) = source {
                chain.push_str(": ");
                chain.push_str(&s.to_string());
                source = s.source();
            }
            tracing::error!(error = %chain, "request failed");
        }
    }
}

impl From<DockerError> for WebError {
    fn from(err: DockerError) -> WebError {
        match err {
            e if e.is_unreachable() => WebError::DockerUnavailable {
                hint: e.hint(),
                message: e.to_string(),
            },
            DockerError::NotFound(what) => WebError::Docker(format!("not found: {what}")),
            DockerError::Conflict(msg) | DockerError::Daemon { message: msg, .. } => {
                WebError::Docker(msg)
            }
            other => WebError::Internal(Box::new(other)),
        }
    }
}

impl From<berth_monitor::MonitorError> for WebError {
    fn from(err: berth_monitor::MonitorError) -> WebError {
        match err {
            berth_monitor::MonitorError::Docker(e) => e.into(),
            other => WebError::Internal(Box::new(other)),
        }
    }
}

impl From<berth_edge::tls::TlsError> for WebError {
    fn from(err: berth_edge::tls::TlsError) -> WebError {
        use berth_edge::tls::TlsError;
        match err {
            TlsError::Invalid { field, message } => {
                let mut errors = FieldErrors::default();
                errors.add(field, message);
                WebError::Invalid(errors)
            }
            TlsError::NotFound(what) => WebError::NotFound(what),
            // The CA's own words are what the user needs.
            e @ (TlsError::Ca { .. } | TlsError::Acme(_)) => WebError::Conflict(e.to_string()),
            other => WebError::Internal(Box::new(other)),
        }
    }
}

impl From<DeployError> for WebError {
    fn from(err: DeployError) -> WebError {
        match err {
            DeployError::NotFound { what } => WebError::NotFound(what),
            e @ (DeployError::Conflict(_) | DeployError::VersionConflict { .. }) => {
                WebError::Conflict(e.to_string())
            }
            e @ DeployError::Store(_) => WebError::Internal(Box::new(e)),
            DeployError::Docker(e) => e.into(),
            DeployError::Env(e) => {
                let mut errors = FieldErrors::default();
                errors.add("vars", e);
                WebError::Invalid(errors)
            }
            DeployError::BadSignature => WebError::Unauthorized,
            DeployError::Invalid { field, message } => {
                let mut errors = FieldErrors::default();
                errors.add(field, message);
                WebError::Invalid(errors)
            }
            e @ DeployError::Tool(_) => WebError::Internal(Box::new(e)),
        }
    }
}

/// HTML error page for the dashboard.
impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        self.log();
        let status = self.status_code();
        let page = views::ErrorPage {
            status: status.as_u16(),
            message: self.public_message(),
        };
        (status, views::render(&page)).into_response()
    }
}

/// The same errors as JSON, for `/api/v1`.
#[derive(Debug)]
pub struct ApiError(pub WebError);

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// A human-readable message.
    pub error: String,
    /// Per-field messages for invalid input, keyed by field name.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub fields: std::collections::BTreeMap<String, String>,
}

impl<E: Into<WebError>> From<E> for ApiError {
    fn from(err: E) -> ApiError {
        ApiError(err.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.0.log();
        let status = self.0.status_code();
        let fields = match &self.0 {
            WebError::Invalid(errors) => errors.to_map(),
            _ => Default::default(),
        };
        (
            status,
            Json(ErrorBody {
                error: self.0.public_message(),
                fields,
            }),
        )
            .into_response()
    }
}
