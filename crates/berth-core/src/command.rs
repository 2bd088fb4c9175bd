use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("is empty")]
    Empty,
    #[error("must be at most 4096 characters")]
    TooLong,
    #[error("has an unclosed {0} quote")]
    UnclosedQuote(char),
    #[error("ends with a lone backslash")]
    TrailingBackslash,
}

/// A container command as the user types it on one line (`httpd -f -p 8080`),
/// split into an argument array with shell quoting rules. It is handed to
/// Docker as that array: no shell ever sees it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "Vec<String>", into = "Vec<String>")]
pub struct Command(Vec<String>);

impl Command {
    pub fn parse(input: &str) -> Result<Self, CommandError> {
        if input.len() > 4096 {
            return Err(CommandError::TooLong);
        }
        let mut args = Vec::new();
        let mut current: Option<String> = None;
        let mut chars = input.chars();
        while let Some(c) = chars.next() {
            match c {
                c if c.is_whitespace() => {
                    if let Some(arg) = current.take() {
                        args.push(arg);
                    }
                }
                '\'' => {
                    let arg = current.get_or_insert_with(String::new);
                    loop {
                        match chars.next() {
                            Some('\'') => break,
                            Some(c) => arg.push(c),
                            None => return Err(CommandError::UnclosedQuote('\'')),
                        }
                    }
                }
                '"' => {
                    let arg = current.get_or_insert_with(String::new);
                    loop {
                        match chars.next() {
                            Some('"') => break,
                            Some('\\') => match chars.next() {
                                Some(c @ ('"' | '\\')) => arg.push(c),
                                Some(c) => {
                                    arg.push('\\');
                                    arg.push(c);
                                }
                                None => return Err(CommandError::UnclosedQuote('"')),
                            },
                            Some(c) => arg.push(c),
                            None => return Err(CommandError::UnclosedQuote('"')),
                        }
                    }
                }
                '\\' => match chars.next() {
                    Some(c) => current.get_or_insert_with(String::new).push(c),
                    None => return Err(CommandError::TrailingBackslash),
                },
                c => current.get_or_insert_with(String::new).push(c),
            }
        }
        if let Some(arg) = current {
            args.push(arg);
        }
        Self::try_from(args)
    }

    pub fn args(&self) -> &[String] {
        &self.0
    }

    /// The command written back as one line that `parse` turns into the same arguments.
    pub fn to_line(&self) -> String {
        self.0
            .iter()
            .map(|arg| {
                let plain = !arg.is_empty()
                    && arg
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_./:=,@%+".contains(c));
                if plain {
                    arg.clone()
                } else {
                    format!("'{}'", arg.replace('\'', r"'\''"))
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

impl TryFrom<Vec<String>> for Command {
    type Error = CommandError;
    fn try_from(args: Vec<String>) -> Result<Self, CommandError> {
        if args.is_empty() {
            Err(CommandError::Empty)
        } else if args.iter().map(|a| a.len() + 1).sum::<usize>() > 4096 {
            Err(CommandError::TooLong)
        } else {
            Ok(Command(args))
        }
    }
}

impl From<Command> for Vec<String> {
    fn from(c: Command) -> Vec<String> {
        c.0
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_line())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn args(line: &str) -> Vec<String> {
        Command::parse(line).unwrap().args().to_vec()
    }

    #[test]
    fn splits_words_and_honours_quotes() {
        assert_eq!(args("httpd -f  -p 8080"), ["httpd", "-f", "-p", "8080"]);
        assert_eq!(
            args(r#"sh -c "echo \"hi\" && sleep 1""#),
            ["sh", "-c", r#"echo "hi" && sleep 1"#]
        );
        assert_eq!(args("echo 'a b' c\\ d ''"), ["echo", "a b", "c d", ""]);
        assert_eq!(args("echo $HOME;rm"), ["echo", "$HOME;rm"]);
    }

    #[test]
    fn refuses_broken_lines() {
        assert_eq!(Command::parse("   "), Err(CommandError::Empty));
        assert_eq!(
            Command::parse("echo 'x"),
            Err(CommandError::UnclosedQuote('\''))
        );
        assert_eq!(
            Command::parse("echo \"x"),
            Err(CommandError::UnclosedQuote('"'))
        );
        assert_eq!(
            Command::parse("echo \\"),
            Err(CommandError::TrailingBackslash)
        );
        assert_eq!(
            Command::parse(&"a".repeat(5000)),
            Err(CommandError::TooLong)
        );
    }

    proptest! {
        #[test]
        fn to_line_then_parse_gives_the_same_arguments(v in proptest::collection::vec("\\PC{0,12}", 1..6)) {
            let cmd = Command::try_from(v.clone()).unwrap();
            let parsed = Command::parse(&cmd.to_line()).unwrap();
            prop_assert_eq!(parsed.args(), v.as_slice());
        }
    }
}
