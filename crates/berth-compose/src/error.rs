//! What stops a plan: each problem names the key it is about and, where
//! the file has it, the line.

use std::fmt;

use serde::Serialize;

/// One reason a file cannot be planned as it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
pub struct Problem {
    /// 1-based line in the file, when it could be found.
    pub line: Option<usize>,
    /// The key path (`services.web.privileged`), empty for the whole file.
    pub key: String,
    pub message: String,
}

impl Problem {
    pub fn new(line: Option<usize>, key: impl Into<String>, message: impl Into<String>) -> Self {
        Problem {
            line,
            key: key.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(line) = self.line {
            write!(f, "line {line}: ")?;
        }
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.message)
    }
}
