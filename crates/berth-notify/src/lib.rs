#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

/// Parsing of channel URLs and their redacted form.
mod channel;
/// SMTP delivery through lettre, to the address that was checked.
mod email;
/// One error enum for parsing, one for delivery.
mod error;
/// The notification itself, the same for every channel.
mod message;
/// Private-address refusal and capped HTTP delivery.
mod net;
/// Each service's request format, and the `Notifier` that sends.
mod send;

pub use channel::{Channel, SmtpSecurity};
pub use error::{ParseError, SendError};
pub use message::{EventKind, Message, Severity};
pub use net::is_private;
pub use send::{
    EVENT_HEADER, Notifier, NotifyOptions, SIGNATURE_HEADER, TIMESTAMP_HEADER, webhook_signature,
};
