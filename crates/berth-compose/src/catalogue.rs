//! berth's own templates, embedded in the binary.

/// Each template's file name (without `.yaml`) and its text.
pub const TEMPLATES: &[(&str, &str)] = &[];
