//! Step 2: `${VAR}` substitution with docker compose's rules, applied to
//! every string value (never to keys) of the parsed document.
//!
//! | form | gives |
//! |---|---|
//! | `$VAR`, `${VAR}` | the value, or `""` when unset |
//! | `${VAR:-default}` | `default` when unset or empty |
//! | `${VAR-default}` | `default` when unset |
//! | `${VAR:?message}` | an error with `message` when unset or empty |
//! | `${VAR?message}` | an error with `message` when unset |
//! | `${VAR:+alt}` | `alt` when set and not empty, else `""` |
//! | `${VAR+alt}` | `alt` when set, else `""` |
//! | `$$` | a literal `$` |
//!
//! Defaults and alternatives may nest (`${A:-${B:-x}}`). A `$` followed by
//! anything else stays as written; `${` that does not form one of the above
//! is an error, as in compose. Output is bounded in size and nesting depth,
//! so a hostile file cannot make one small string grow without end.

use serde_norway::Value;

/// Deepest `${A:-${B:-…}}` nesting accepted.
pub const MAX_DEPTH: usize = 8;
/// Total bytes interpolation may produce for one document.
pub const MAX_OUTPUT: usize = 4 << 20;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InterpolationError {
    #[error("{name} is required: {message}")]
    Required { name: String, message: String },
    #[error(
        "invalid interpolation {0:?}: use ${{NAME}}, ${{NAME:-default}}, ${{NAME:?message}} or $$ for a literal $"
    )]
    Invalid(String),
    #[error("unclosed '${{' in {0:?}")]
    Unclosed(String),
    #[error("interpolation nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("interpolation would produce more than {MAX_OUTPUT} bytes")]
    TooLarge,
}

/// A variable the document refers to, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub name: String,
    /// The `:-`/`-` default, as written (before its own interpolation).
    pub default: Option<String>,
    /// The `:?`/`?` message: the variable must be given.
    pub required: Option<String>,
}

/// Substitutes variables from `lookup`, recording every reference it meets
/// and counting its output against [`MAX_OUTPUT`].
pub struct Interpolator<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
    budget: usize,
    /// Coolify's dialect: `${VAR:?text}` is required with `text` as its
    /// default (compose reads `text` as the error message), and `content:`
    /// files are not interpolated.
    coolify: bool,
    pub references: Vec<Reference>,
    /// Required values that were not given, all of them, so a form can
    /// show every missing field at once.
    pub missing: Vec<InterpolationError>,
}

#[derive(Clone, Copy)]
enum Op {
    Default { empty_too: bool },
    Required { empty_too: bool },
    Alt { empty_too: bool },
}

fn is_name_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_'
}

fn is_name_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

impl<'a> Interpolator<'a> {
    pub fn new(lookup: &'a dyn Fn(&str) -> Option<String>) -> Self {
        Interpolator {
            lookup,
            budget: MAX_OUTPUT,
            coolify: false,
            references: Vec::new(),
            missing: Vec::new(),
        }
    }

    /// Reads `${VAR:?text}` as Coolify does: a required value whose default
    /// is `text`.
    pub fn coolify(lookup: &'a dyn Fn(&str) -> Option<String>) -> Self {
        Interpolator {
            coolify: true,
            ..Interpolator::new(lookup)
        }
    }

    /// Interpolates one string; a missing required value is an error.
    pub fn interpolate(&mut self, input: &str) -> Result<String, InterpolationError> {
        let out = self.run(input, 0)?;
        match self.missing.drain(..).next() {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }

    /// Interpolates every string value in `value`, in place. Keys are left
    /// alone, as compose does. Missing required values are gathered in
    /// [`Interpolator::missing`].
    pub fn interpolate_value(&mut self, value: &mut Value) -> Result<(), InterpolationError> {
        match value {
            Value::String(s) => {
                if s.contains('$') {
                    *s = self.run(s, 0)?;
                }
            }
            Value::Sequence(items) => {
                for item in items {
                    self.interpolate_value(item)?;
                }
            }
            Value::Mapping(map) => {
                for (k, v) in map.iter_mut() {
                    // Coolify writes `content:` files as they are: nginx's
                    // `$remote_addr`, a script's `${VAR}` or a bcrypt hash
                    // reach the file unchanged.
                    if self.coolify && k.as_str() == Some("content") {
                        continue;
                    }
                    self.interpolate_value(v)?;
                }
            }
            Value::Tagged(tagged) => self.interpolate_value(&mut tagged.value)?,
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
        Ok(())
    }

    fn push(&mut self, out: &mut String, s: &str) -> Result<(), InterpolationError> {
        self.budget = self
            .budget
            .checked_sub(s.len())
            .ok_or(InterpolationError::TooLarge)?;
        out.push_str(s);
        Ok(())
    }

    fn run(&mut self, input: &str, depth: usize) -> Result<String, InterpolationError> {
        if depth > MAX_DEPTH {
            return Err(InterpolationError::TooDeep);
        }
        let bytes = input.as_bytes();
        let mut out = String::with_capacity(input.len().min(self.budget));
        let mut i = 0;
        let mut literal_from = 0;
        while i < bytes.len() {
            if bytes[i] != b'$' {
                i += 1;
                continue;
            }
            self.push(&mut out, &input[literal_from..i])?;
            match bytes.get(i + 1) {
                Some(b'$') => {
                    self.push(&mut out, "$")?;
                    i += 2;
                }
                Some(b'{') => {
                    let end = closing_brace(input, i + 2)
                        .ok_or_else(|| InterpolationError::Unclosed(input.to_owned()))?;
                    let value = self.braced(&input[i + 2..end], depth)?;
                    self.push(&mut out, &value)?;
                    i = end + 1;
                }
                Some(&c) if is_name_start(c) => {
                    let mut j = i + 1;
                    while j < bytes.len() && is_name_char(bytes[j]) {
                        j += 1;
                    }
                    let name = &input[i + 1..j];
                    self.note(name, None, None);
                    let value = (self.lookup)(name).unwrap_or_default();
                    self.push(&mut out, &value)?;
                    i = j;
                }
                // `$` before anything else is literal, as in compose.
                _ => {
                    self.push(&mut out, "$")?;
                    i += 1;
                }
            }
            literal_from = i;
        }
        self.push(&mut out, &input[literal_from..])?;
        Ok(out)
    }

    fn note(&mut self, name: &str, default: Option<&str>, required: Option<&str>) {
        self.references.push(Reference {
            name: name.to_owned(),
            default: default.map(str::to_owned),
            required: required.map(str::to_owned),
        });
    }

    /// The inside of `${…}`.
    fn braced(&mut self, inner: &str, depth: usize) -> Result<String, InterpolationError> {
        let invalid = || InterpolationError::Invalid(format!("${{{inner}}}"));
        let bytes = inner.as_bytes();
        if bytes.is_empty() || !is_name_start(bytes[0]) {
            return Err(invalid());
        }
        let mut n = 1;
        while n < bytes.len() && is_name_char(bytes[n]) {
            n += 1;
        }
        let name = &inner[..n];
        let rest = &inner[n..];
        if rest.is_empty() {
            self.note(name, None, None);
            return Ok((self.lookup)(name).unwrap_or_default());
        }
        let (empty_too, rest) = match rest.strip_prefix(':') {
            Some(r) => (true, r),
            None => (false, rest),
        };
        let op = match rest.as_bytes().first() {
            Some(b'-') => Op::Default { empty_too },
            Some(b'?') => Op::Required { empty_too },
            Some(b'+') => Op::Alt { empty_too },
            _ => return Err(invalid()),
        };
        let arg = &rest[1..];
        let value = (self.lookup)(name);
        // `:` makes an empty value count as unset.
        let set = |empty_too: bool| {
            value
                .as_deref()
                .is_some_and(|v| !(empty_too && v.is_empty()))
        };
        match op {
            Op::Default { empty_too } => {
                self.note(name, Some(arg), None);
                if set(empty_too) {
                    Ok(value.unwrap_or_default())
                } else {
                    self.run(arg, depth + 1)
                }
            }
            Op::Required { empty_too } => {
                self.note(name, None, Some(arg));
                if set(empty_too) {
                    Ok(value.unwrap_or_default())
                } else if self.coolify && !arg.is_empty() {
                    self.run(arg, depth + 1)
                } else {
                    self.missing.push(InterpolationError::Required {
                        name: name.to_owned(),
                        message: if arg.is_empty() {
                            "it is not set".to_owned()
                        } else {
                            arg.to_owned()
                        },
                    });
                    Ok(String::new())
                }
            }
            Op::Alt { empty_too } => {
                self.note(name, None, None);
                if set(empty_too) {
                    self.run(arg, depth + 1)
                } else {
                    Ok(String::new())
                }
            }
        }
    }
}

/// Index of the `}` closing a `${` whose inside starts at `from`, counting
/// nested `${…}` (a default may hold one).
fn closing_brace(input: &str, from: usize) -> Option<usize> {
    let bytes = input.as_bytes();
    let mut depth = 0usize;
    let mut i = from;
    while i < bytes.len() {
        match bytes[i] {
            b'$' if bytes.get(i + 1) == Some(&b'$') => i += 1,
            b'$' if bytes.get(i + 1) == Some(&b'{') => {
                depth += 1;
                i += 1;
            }
            b'}' if depth == 0 => return Some(i),
            b'}' => depth -= 1,
            _ => {}
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "SET" => Some("value".to_owned()),
            "EMPTY" => Some(String::new()),
            "B" => Some("b".to_owned()),
            "BIG" => Some("x".repeat(1 << 20)),
            _ => None,
        }
    }

    fn run(input: &str) -> Result<String, InterpolationError> {
        Interpolator::new(&env).interpolate(input)
    }

    #[test]
    fn plain_references_take_the_value_or_nothing() {
        assert_eq!(run("a ${SET} b").unwrap(), "a value b");
        assert_eq!(run("$SET/x").unwrap(), "value/x");
        assert_eq!(run("${UNSET}|$UNSET").unwrap(), "|");
        assert_eq!(run("${EMPTY}").unwrap(), "");
    }

    #[test]
    fn colon_dash_defaults_when_unset_or_empty_dash_only_when_unset() {
        assert_eq!(run("${UNSET:-d}").unwrap(), "d");
        assert_eq!(run("${EMPTY:-d}").unwrap(), "d");
        assert_eq!(run("${SET:-d}").unwrap(), "value");
        assert_eq!(run("${UNSET-d}").unwrap(), "d");
        assert_eq!(run("${EMPTY-d}").unwrap(), "");
        assert_eq!(run("${UNSET:-}").unwrap(), "");
        assert_eq!(run("${UNSET:-a b:c}").unwrap(), "a b:c");
    }

    #[test]
    fn defaults_nest() {
        assert_eq!(run("${UNSET:-${B}}").unwrap(), "b");
        assert_eq!(run("${UNSET:-${NOPE:-deep}}/x").unwrap(), "deep/x");
        assert_eq!(run("${SET:-${NOPE:?never evaluated}}").unwrap(), "value");
    }

    #[test]
    fn required_values_fail_with_their_message() {
        assert_eq!(
            run("${UNSET:?set the admin email}"),
            Err(InterpolationError::Required {
                name: "UNSET".into(),
                message: "set the admin email".into()
            })
        );
        assert!(run("${EMPTY:?no}").is_err());
        assert_eq!(run("${EMPTY?no}").unwrap(), "");
        assert!(matches!(
            run("${UNSET?}"),
            Err(InterpolationError::Required { message, .. }) if message == "it is not set"
        ));
        assert_eq!(run("${SET:?no}").unwrap(), "value");
    }

    #[test]
    fn coolify_reads_a_required_message_as_the_default() {
        let mut i = Interpolator::coolify(&env);
        assert_eq!(i.interpolate("${UNSET:?UTC}").unwrap(), "UTC");
        assert!(i.interpolate("${UNSET:?}").is_err());
        assert_eq!(i.references[0].required.as_deref(), Some("UTC"));
    }

    #[test]
    fn coolify_content_files_are_written_as_they_are() {
        let text = "content: 'log $remote_addr ${SET} ${[a-z]}'\nother: '${SET}'";
        let mut doc: Value = serde_norway::from_str(text).unwrap();
        Interpolator::coolify(&env)
            .interpolate_value(&mut doc)
            .unwrap();
        assert_eq!(
            doc["content"].as_str(),
            Some("log $remote_addr ${SET} ${[a-z]}")
        );
        assert_eq!(doc["other"].as_str(), Some("value"));
        let mut doc: Value = serde_norway::from_str(text).unwrap();
        assert!(Interpolator::new(&env).interpolate_value(&mut doc).is_err());
    }

    #[test]
    fn plus_gives_the_alternative_only_when_set() {
        assert_eq!(run("${SET:+alt}").unwrap(), "alt");
        assert_eq!(run("${EMPTY:+alt}").unwrap(), "");
        assert_eq!(run("${EMPTY+alt}").unwrap(), "alt");
        assert_eq!(run("${UNSET+alt}").unwrap(), "");
    }

    #[test]
    fn double_dollar_is_a_literal_dollar_and_lone_dollars_stay() {
        assert_eq!(run("$$SET $${SET}").unwrap(), "$SET ${SET}");
        assert_eq!(run("cost: 5$ $1 $").unwrap(), "cost: 5$ $1 $");
        assert_eq!(run("${UNSET:-$$x}").unwrap(), "$x");
    }

    #[test]
    fn malformed_braces_are_errors() {
        assert!(matches!(run("${}"), Err(InterpolationError::Invalid(_))));
        assert!(matches!(run("${1A}"), Err(InterpolationError::Invalid(_))));
        assert!(matches!(run("${A%x}"), Err(InterpolationError::Invalid(_))));
        assert!(matches!(run("${A"), Err(InterpolationError::Unclosed(_))));
    }

    #[test]
    fn nesting_and_output_are_bounded() {
        let deep = format!("{}x{}", "${U:-".repeat(20), "}".repeat(20));
        assert_eq!(run(&deep), Err(InterpolationError::TooDeep));
        let mut i = Interpolator::new(&env);
        let many = "${BIG}".repeat(8);
        assert_eq!(i.interpolate(&many), Err(InterpolationError::TooLarge));
    }

    #[test]
    fn references_are_recorded_with_defaults_and_requirements() {
        let mut i = Interpolator::new(&env);
        i.interpolate("${A:-1} $B ${C:?why}").unwrap_err();
        let names: Vec<_> = i.references.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["A", "B", "C"]);
        assert_eq!(i.references[0].default.as_deref(), Some("1"));
        assert_eq!(i.references[2].required.as_deref(), Some("why"));
    }

    proptest! {
        #[test]
        fn text_without_dollars_is_unchanged(s in "[^$]{0,200}") {
            prop_assert_eq!(run(&s).unwrap(), s);
        }

        #[test]
        fn escaped_text_reads_back_as_written(s in ".{0,100}") {
            prop_assert_eq!(run(&s.replace('$', "$$")).unwrap(), s);
        }

        #[test]
        fn any_input_ends_without_panicking(s in "[$a-z{}:?+-]{0,60}") {
            let _ = run(&s);
        }

        #[test]
        fn a_set_value_wins_over_any_default(d in "[a-z ]{0,20}") {
            let with_default = format!("${{SET:-{d}}}");
            prop_assert_eq!(run(&with_default).unwrap(), "value");
        }
    }
}
