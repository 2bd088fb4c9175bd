//! `.env` text: parsing what people paste and rendering what berth shows.
//!
//! The dialect is the one docker compose and most dotenv loaders share:
//! - `KEY=value`, optionally `export KEY=value`; blank lines and `#` comments
//!   are skipped; CRLF and CR line ends read as LF (browsers send CRLF).
//! - unquoted values run to the end of the line, trimmed; ` #` starts a comment.
//! - `"double quoted"` values may span lines and know `\n \r \t \" \\ \$`
//!   (`\$` is kept as `$$`, the template form of a plain `$`).
//! - `'single quoted'` values may span lines, know no escapes and are
//!   **literal**: no `${}` interpolation.
//!
//! Every problem is reported with its line number and nothing is returned
//! until the text is clean, so a save never keeps half a file.

use std::collections::HashMap;

use crate::env::{EnvKey, EnvVar, check_value};

/// One `KEY=value` line (or several, for a quoted multi-line value).
#[derive(Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: EnvKey,
    pub value: String,
    /// Single quoted: taken as written.
    pub literal: bool,
    /// 1-based line where the entry starts.
    pub line: usize,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("key", &self.key)
            .field("literal", &self.literal)
            .field("line", &self.line)
            .finish_non_exhaustive()
    }
}

/// A problem on one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for LineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// Parses a whole `.env` text, or returns every problem in it.
pub fn parse(text: &str) -> Result<Vec<Entry>, Vec<LineError>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    let mut cursor = Cursor {
        chars: text.chars().collect(),
        at: 0,
        line: 1,
    };
    let mut entries: Vec<Entry> = Vec::new();
    let mut errors = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    loop {
        cursor.skip_blanks();
        let Some(c) = cursor.peek() else { break };
        if c == '\n' {
            cursor.bump();
            continue;
        }
        if c == '#' {
            cursor.skip_line();
            continue;
        }
        let line = cursor.line;
        match entry(&mut cursor) {
            Ok((key, value, literal)) => {
                let key = match EnvKey::parse(&key) {
                    Ok(key) => key,
                    Err(e) => {
                        errors.push(LineError {
                            line,
                            message: e.to_string(),
                        });
                        continue;
                    }
                };
                if let Err(e) = check_value(&value) {
                    errors.push(LineError {
                        line,
                        message: format!("{key}: {e}"),
                    });
                    continue;
                }
                if let Some(first) = seen.get(key.as_str()) {
                    errors.push(LineError {
                        line,
                        message: format!("{key} is already set on line {first}"),
                    });
                    continue;
                }
                seen.insert(key.as_str().to_owned(), line);
                entries.push(Entry {
                    key,
                    value,
                    literal,
                    line,
                });
            }
            Err(Stop::Line(message)) => {
                errors.push(LineError { line, message });
                cursor.skip_line();
            }
            Err(Stop::End(message)) => {
                errors.push(LineError { line, message });
                break;
            }
        }
    }
    if errors.is_empty() {
        Ok(entries)
    } else {
        Err(errors)
    }
}

enum Stop {
    /// The rest of this line is skipped and parsing goes on.
    Line(String),
    /// An unterminated quote ate the rest of the text.
    End(String),
}

struct Cursor {
    chars: Vec<char>,
    at: usize,
    line: usize,
}

impl Cursor {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.at).copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.at += 1;
        if c == '\n' {
            self.line += 1;
        }
        Some(c)
    }

    fn skip_blanks(&mut self) {
        while matches!(self.peek(), Some(' ' | '\t')) {
            self.bump();
        }
    }

    fn skip_line(&mut self) {
        while let Some(c) = self.bump() {
            if c == '\n' {
                break;
            }
        }
    }

    /// Until `=`, whitespace or the end of the line.
    fn word(&mut self) -> String {
        let mut out = String::new();
        while let Some(c) = self.peek() {
            if c == '=' || c == ' ' || c == '\t' || c == '\n' {
                break;
            }
            out.push(c);
            self.bump();
        }
        out
    }

    /// After a closing quote only blanks and a comment may follow on the line.
    fn end_of_value(&mut self) -> Result<(), Stop> {
        self.skip_blanks();
        match self.peek() {
            None => Ok(()),
            Some('\n') => {
                self.bump();
                Ok(())
            }
            Some('#') => {
                self.skip_line();
                Ok(())
            }
            Some(c) => Err(Stop::Line(format!(
                "unexpected {c:?} after the closing quote"
            ))),
        }
    }
}

fn entry(cursor: &mut Cursor) -> Result<(String, String, bool), Stop> {
    let mut key = cursor.word();
    if key == "export" && matches!(cursor.peek(), Some(' ' | '\t')) {
        cursor.skip_blanks();
        key = cursor.word();
    }
    cursor.skip_blanks();
    if cursor.peek() != Some('=') {
        return Err(Stop::Line(if key.is_empty() {
            "expected KEY=value".to_owned()
        } else {
            format!("expected KEY=value, found {key:?} without '='")
        }));
    }
    cursor.bump();
    cursor.skip_blanks();
    match cursor.peek() {
        Some('"') => {
            cursor.bump();
            let value = double_quoted(cursor)?;
            cursor.end_of_value()?;
            Ok((key, value, false))
        }
        Some('\'') => {
            cursor.bump();
            let mut value = String::new();
            loop {
                match cursor.bump() {
                    None => {
                        return Err(Stop::End(format!(
                            "{key}: the single quote is never closed"
                        )));
                    }
                    Some('\'') => break,
                    Some(c) => value.push(c),
                }
            }
            cursor.end_of_value()?;
            Ok((key, value, true))
        }
        _ => {
            let mut value = String::new();
            while let Some(c) = cursor.peek() {
                if c == '\n' {
                    break;
                }
                if c == '#' && value.ends_with([' ', '\t']) {
                    cursor.skip_line();
                    return Ok((key, value.trim_end().to_owned(), false));
                }
                value.push(c);
                cursor.bump();
            }
            cursor.bump();
            Ok((key, value.trim_end().to_owned(), false))
        }
    }
}

fn double_quoted(cursor: &mut Cursor) -> Result<String, Stop> {
    let mut value = String::new();
    loop {
        match cursor.bump() {
            None => {
                return Err(Stop::End("the double quote is never closed".to_owned()));
            }
            Some('"') => return Ok(value),
            Some('\\') => match cursor.bump() {
                Some('n') => value.push('\n'),
                Some('r') => value.push('\r'),
                Some('t') => value.push('\t'),
                Some('"') => value.push('"'),
                Some('\\') => value.push('\\'),
                Some('$') => value.push_str("$$"),
                // Unknown escapes stay as typed, like most loaders do.
                Some(other) => {
                    value.push('\\');
                    value.push(other);
                }
                None => return Err(Stop::End("the double quote is never closed".to_owned())),
            },
            Some(c) => value.push(c),
        }
    }
}

/// Characters that need no quotes.
fn plain(value: &str) -> bool {
    !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-./:@+,=%^~${}!?*()[]&|;<>`".contains(c))
}

/// Renders one value so that [`parse`] gives it back: plain values bare,
/// literal ones single quoted, the rest double quoted.
///
/// A literal value that holds `'` or a carriage return cannot be single
/// quoted; it is written double quoted with each `$` as `\$`, and reads back
/// as the equivalent interpolated value (every `$` doubled, not literal).
pub fn render_value(value: &str, literal: bool) -> String {
    if literal && !value.contains(['\'', '\r']) {
        return format!("'{value}'");
    }
    if !literal && plain(value) {
        return value.to_owned();
    }
    if !literal && value.is_empty() {
        return String::new();
    }
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\r' => out.push_str("\\r"),
            '$' if literal => out.push_str("\\$"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The variables as a `.env` text, one `KEY=value` per variable.
pub fn render<'a>(vars: impl IntoIterator<Item = &'a EnvVar>) -> String {
    let mut out = String::new();
    for var in vars {
        out.push_str(var.key.as_str());
        out.push('=');
        out.push_str(&render_value(&var.value, var.flags.literal));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::env::EnvFlags;

    #[test]
    fn a_parsed_entry_never_shows_its_value_in_debug_output() {
        let parsed = parse("DB_PASSWORD='hunter2-in-clear'\n").unwrap();
        let shown = format!("{parsed:?} {parsed:#?}");
        assert!(!shown.contains("hunter2-in-clear"), "{shown}");
        assert!(shown.contains("DB_PASSWORD"), "{shown}");
    }

    fn pairs(text: &str) -> Vec<(String, String, bool)> {
        parse(text)
            .unwrap_or_else(|e| panic!("{e:?}"))
            .into_iter()
            .map(|e| (e.key.to_string(), e.value, e.literal))
            .collect()
    }

    fn one(text: &str) -> String {
        let mut all = pairs(text);
        assert_eq!(all.len(), 1, "{text:?}");
        all.remove(0).1
    }

    fn errors(text: &str) -> Vec<(usize, String)> {
        parse(text)
            .unwrap_err()
            .into_iter()
            .map(|e| (e.line, e.message))
            .collect()
    }

    #[test]
    fn plain_lines_comments_and_blank_lines() {
        let text = "# a comment\n\nA=1\n  B = two  \n\t# indented comment\nC=\n";
        assert_eq!(
            pairs(text),
            [
                ("A".into(), "1".into(), false),
                ("B".into(), "two".into(), false),
                ("C".into(), "".into(), false)
            ]
        );
    }

    #[test]
    fn inline_comments_need_a_space_before_the_hash() {
        assert_eq!(one("URL=http://x/#frag # the url\n"), "http://x/#frag");
        assert_eq!(one("COLOR=#fff\n"), "#fff");
        assert_eq!(
            one("A=\"quoted # not a comment\" # comment\n"),
            "quoted # not a comment"
        );
    }

    #[test]
    fn export_prefix_is_accepted() {
        assert_eq!(pairs("export A=1\nexport  B='2'\n").len(), 2);
        // A variable may still be called `export`.
        assert_eq!(pairs("export=1")[0].0, "export");
    }

    #[test]
    fn double_quotes_know_escapes() {
        assert_eq!(
            one(r#"A="line1\nline2\ttab \"q\" back\\slash""#),
            "line1\nline2\ttab \"q\" back\\slash"
        );
        assert_eq!(one(r#"A="cr\r""#), "cr\r");
        assert_eq!(one(r#"A="\$HOME and \${X}""#), "$$HOME and $${X}");
        assert_eq!(one(r#"A="unknown \q stays""#), "unknown \\q stays");
    }

    #[test]
    fn single_quotes_are_literal_and_know_no_escapes() {
        let all = pairs(r"A='${X} \n $$'");
        assert_eq!(all[0], ("A".into(), r"${X} \n $$".into(), true));
    }

    #[test]
    fn quoted_values_may_span_lines() {
        let text = "KEY=\"-----BEGIN KEY-----\nabc\n-----END KEY-----\"\nNEXT='a\nb'\nLAST=1\n";
        let all = parse(text).unwrap();
        assert_eq!(all[0].value, "-----BEGIN KEY-----\nabc\n-----END KEY-----");
        assert_eq!(all[1].value, "a\nb");
        assert_eq!((all[1].line, all[2].line), (4, 6));
    }

    #[test]
    fn crlf_reads_like_lf_even_inside_quotes() {
        let text = "A=1\r\nB=\"x\r\ny\"\r\nC='z'\r\n";
        assert_eq!(
            pairs(text),
            [
                ("A".into(), "1".into(), false),
                ("B".into(), "x\ny".into(), false),
                ("C".into(), "z".into(), true)
            ]
        );
    }

    #[test]
    fn references_are_kept_for_interpolation() {
        assert_eq!(
            one("URL=postgres://${project.USER}@${HOST}/db"),
            "postgres://${project.USER}@${HOST}/db"
        );
    }

    #[test]
    fn duplicate_keys_are_reported_with_both_lines() {
        assert_eq!(
            errors("A=1\nB=2\nA=3\n"),
            [(3, "A is already set on line 1".to_owned())]
        );
    }

    #[test]
    fn every_bad_line_is_reported_with_its_number() {
        let found = errors("OK=1\n1BAD=x\nMY-VAR=y\nno equals here\nA=\"x\" trailing\nB=2\n");
        let lines: Vec<usize> = found.iter().map(|(l, _)| *l).collect();
        assert_eq!(lines, [2, 3, 4, 5]);
        assert!(found[0].1.contains("must start with a letter"), "{found:?}");
        assert!(found[1].1.contains("letters, digits and '_'"), "{found:?}");
        assert!(found[2].1.contains("expected KEY=value"), "{found:?}");
        assert!(found[3].1.contains("after the closing quote"), "{found:?}");
    }

    #[test]
    fn an_unclosed_quote_is_reported_at_its_line() {
        assert_eq!(
            errors("A=1\nB=\"never closed\nC=3\n"),
            [(2, "the double quote is never closed".to_owned())]
        );
        assert_eq!(errors("A='x")[0].0, 1);
    }

    #[test]
    fn a_byte_order_mark_is_ignored() {
        assert_eq!(pairs("\u{feff}A=1")[0].0, "A");
    }

    #[test]
    fn values_render_in_the_simplest_form_that_reads_back() {
        assert_eq!(render_value("abc", false), "abc");
        assert_eq!(render_value("", false), "");
        assert_eq!(render_value("a b", false), "\"a b\"");
        assert_eq!(render_value("${X}", true), "'${X}'");
        assert_eq!(render_value("it's $X", true), "\"it's \\$X\"");
        assert_eq!(render_value("a\nb", false), "\"a\nb\"");
    }

    fn arb_var() -> impl Strategy<Value = EnvVar> {
        (
            "[A-Za-z_][A-Za-z0-9_]{0,12}",
            prop_oneof![
                "\\PC{0,30}",
                "[ -~\n\r\t]{0,30}",
                "[$'\"\\\\#= \n\r{}]{0,12}"
            ],
            any::<(bool, bool, bool, bool)>(),
        )
            .prop_map(|(key, value, (secret, build, runtime, literal))| EnvVar {
                key: EnvKey::parse(&key).unwrap(),
                value,
                flags: EnvFlags {
                    secret,
                    build,
                    runtime,
                    literal,
                },
            })
    }

    proptest! {
        #[test]
        fn parsing_a_rendered_set_gives_the_same_set(vars in proptest::collection::vec(arb_var(), 0..12)) {
            // Keys are unique in a set.
            let mut seen = std::collections::HashSet::new();
            let vars: Vec<EnvVar> = vars.into_iter().filter(|v| seen.insert(v.key.clone())).collect();
            let parsed = parse(&render(&vars)).map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
            prop_assert_eq!(parsed.len(), vars.len());
            for (var, entry) in vars.iter().zip(&parsed) {
                prop_assert_eq!(&entry.key, &var.key);
                if var.flags.literal && var.value.contains(['\'', '\r']) {
                    // The documented equivalent: interpolated, every `$` doubled.
                    prop_assert!(!entry.literal);
                    prop_assert_eq!(&entry.value, &var.value.replace('$', "$$"));
                } else {
                    prop_assert_eq!(entry.literal, var.flags.literal);
                    prop_assert_eq!(&entry.value, &var.value);
                }
            }
        }

        #[test]
        fn parsing_never_panics(text in "\\PC{0,200}") {
            let _ = parse(&text);
        }
    }
}
