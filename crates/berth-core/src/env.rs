//! Environment variables: keys, flags, the change between two sets, and
//! `${}` interpolation across the app, project and global scopes.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use serde::{Deserialize, Serialize};

/// Why an environment variable name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvKeyError {
    #[error("a variable needs a name")]
    Empty,
    #[error("{0:?} must start with a letter or '_'")]
    BadStart(String),
    #[error("{key:?} may only contain letters, digits and '_' (found {found:?})")]
    InvalidChar { key: String, found: char },
    #[error("names are at most 255 characters (this one is {0})")]
    TooLong(usize),
}

/// A variable name: `[A-Za-z_][A-Za-z0-9_]*`, the names every shell and
/// every `.env` loader accept, so a variable berth saves is one the app can read.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EnvKey(String);

impl EnvKey {
    pub fn parse(input: &str) -> Result<EnvKey, EnvKeyError> {
        let key = input.trim();
        let Some(first) = key.chars().next() else {
            return Err(EnvKeyError::Empty);
        };
        if key.len() > 255 {
            return Err(EnvKeyError::TooLong(key.len()));
        }
        if !(first.is_ascii_alphabetic() || first == '_') {
            return Err(EnvKeyError::BadStart(key.to_owned()));
        }
        if let Some(found) = key
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '_'))
        {
            return Err(EnvKeyError::InvalidChar {
                key: key.to_owned(),
                found,
            });
        }
        Ok(EnvKey(key.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Names that usually hold credentials start out as secrets.
    pub fn looks_secret(&self) -> bool {
        let upper = self.0.to_ascii_uppercase();
        [
            "SECRET", "PASSWORD", "PASSWD", "TOKEN", "PRIVATE", "API_KEY", "_KEY",
        ]
        .iter()
        .any(|word| upper.contains(word))
    }
}

impl TryFrom<String> for EnvKey {
    type Error = EnvKeyError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        EnvKey::parse(&value)
    }
}

impl From<EnvKey> for String {
    fn from(key: EnvKey) -> String {
        key.0
    }
}

impl AsRef<str> for EnvKey {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EnvKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How a variable is used and shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EnvFlags {
    /// Masked in every view until revealed on purpose; never logged.
    pub secret: bool,
    /// Passed as a build argument.
    pub build: bool,
    /// Set in the running container.
    pub runtime: bool,
    /// Taken as written: no `${}` interpolation, `$$` stays `$$`.
    pub literal: bool,
}

impl EnvFlags {
    /// What a new variable gets: runtime, secret when its name says so.
    pub fn default_for(key: &EnvKey) -> EnvFlags {
        EnvFlags {
            secret: key.looks_secret(),
            build: false,
            runtime: true,
            literal: false,
        }
    }
}

/// Why a value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvValueError {
    #[error("values cannot contain a NUL character")]
    Nul,
    #[error("values are at most 65536 bytes (this one is {0})")]
    TooLong(usize),
}

/// Docker passes the environment as C strings, so NUL cannot be in a value.
pub fn check_value(value: &str) -> Result<(), EnvValueError> {
    if value.contains('\0') {
        return Err(EnvValueError::Nul);
    }
    if value.len() > 65536 {
        return Err(EnvValueError::TooLong(value.len()));
    }
    Ok(())
}

/// One variable. `value` is the text as saved: unless `flags.literal`, it may
/// hold `${NAME}` references and `$$` for a plain `$`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvVar {
    pub key: EnvKey,
    pub value: String,
    pub flags: EnvFlags,
}

/// Values never reach a log through `Debug`.
impl fmt::Debug for EnvVar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnvVar")
            .field("key", &self.key)
            .field("value", &crate::REDACTED)
            .field("flags", &self.flags)
            .finish()
    }
}

impl EnvVar {
    /// Spans several lines: edited in a text area.
    pub fn is_multiline(&self) -> bool {
        self.value.contains('\n')
    }
}

/// What happened to one key between two sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvChange {
    Added(EnvVar),
    Changed { old: EnvVar, new: EnvVar },
    Removed(EnvVar),
}

impl EnvChange {
    pub fn key(&self) -> &EnvKey {
        match self {
            EnvChange::Added(v) | EnvChange::Removed(v) => &v.key,
            EnvChange::Changed { new, .. } => &new.key,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            EnvChange::Added(_) => "added",
            EnvChange::Changed { .. } => "changed",
            EnvChange::Removed(_) => "removed",
        }
    }
}

/// The changes that turn `old` into `new`, in the order of `new` then the removed keys.
pub fn diff(old: &[EnvVar], new: &[EnvVar]) -> Vec<EnvChange> {
    let before: HashMap<&EnvKey, &EnvVar> = old.iter().map(|v| (&v.key, v)).collect();
    let after: HashSet<&EnvKey> = new.iter().map(|v| &v.key).collect();
    let mut changes = Vec::new();
    for var in new {
        match before.get(&var.key) {
            None => changes.push(EnvChange::Added(var.clone())),
            Some(prev) if *prev != var => changes.push(EnvChange::Changed {
                old: (*prev).clone(),
                new: var.clone(),
            }),
            Some(_) => {}
        }
    }
    for var in old {
        if !after.contains(&var.key) {
            changes.push(EnvChange::Removed(var.clone()));
        }
    }
    changes
}

/// Where a variable lives; references name the scope: `${NAME}` (the same
/// scope), `${project.NAME}`, `${global.NAME}`. `${database.NAME}` is the
/// connection URL of the project's managed database NAME, filled in when a
/// container is created, so the env store keeps the reference and never the
/// password ("Use in app").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// An app (or, later, a stack): the variables that reach a container.
    Owner,
    Project,
    Global,
    /// The project's managed databases (only apps' own variables may refer to them).
    Database,
}

/// A `${}` reference inside a value.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    pub scope: Option<Scope>,
    pub name: String,
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.scope {
            Some(Scope::Project) => write!(f, "${{project.{}}}", self.name),
            Some(Scope::Global) => write!(f, "${{global.{}}}", self.name),
            Some(Scope::Database) => write!(f, "${{database.{}}}", self.name),
            _ => write!(f, "${{{}}}", self.name),
        }
    }
}

/// Why a value could not be interpolated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InterpolationError {
    #[error(
        "\"${{\" is not closed: write $${{ for a literal \"${{\", or mark the variable literal"
    )]
    Unclosed,
    #[error(
        "{0:?} is not a valid reference: use ${{NAME}}, ${{project.NAME}}, ${{global.NAME}} or ${{database.NAME}}"
    )]
    BadReference(String),
    #[error("{0} is not set")]
    Unknown(String),
    #[error("{0} refers back to itself")]
    Cycle(String),
    #[error(
        "{0} is out of reach here: global variables refer only to global ones, and only an app's own variables to databases"
    )]
    OutOfScope(String),
    #[error("references nest more than {MAX_DEPTH} deep")]
    TooDeep,
    #[error("the value grows past {} KiB once its references are filled in", MAX_RESOLVED_BYTES / 1024)]
    TooLong,
}

/// How deep references may nest (`A` → `B` → `C` …). Real sets nest two or
/// three deep; a bound keeps a hostile set from recursing without end.
pub const MAX_DEPTH: usize = 16;
/// How long one value may grow once its references are filled in. Each
/// `${A}${A}` doubles: without a bound, 1.4 KB of variables once grew berth
/// to 540 MB.
pub const MAX_RESOLVED_BYTES: usize = 128 * 1024;

/// One piece of a value: text, or a reference.
enum Piece<'a> {
    Text(&'a str),
    Dollar,
    Ref(Reference),
}

fn pieces(value: &str) -> Result<Vec<Piece<'_>>, InterpolationError> {
    let mut out = Vec::new();
    let mut rest = value;
    while let Some(at) = rest.find('$') {
        out.push(Piece::Text(&rest[..at]));
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push(Piece::Dollar);
            rest = tail;
        } else if let Some(tail) = after.strip_prefix('{') {
            let end = tail.find('}').ok_or(InterpolationError::Unclosed)?;
            out.push(Piece::Ref(parse_reference(&tail[..end])?));
            rest = &tail[end + 1..];
        } else {
            // A `$` not followed by `{` or `$` is plain text (`$2y$10$…` hashes stay intact).
            out.push(Piece::Text("$"));
            rest = after;
        }
    }
    out.push(Piece::Text(rest));
    Ok(out)
}

fn parse_reference(inner: &str) -> Result<Reference, InterpolationError> {
    let (scope, name) = match inner.split_once('.') {
        Some(("project", name)) => (Some(Scope::Project), name),
        Some(("global", name)) => (Some(Scope::Global), name),
        Some(("database", name)) => {
            return crate::DatabaseName::parse(name)
                .ok()
                .filter(|n| n.as_str() == name)
                .map(|_| Reference {
                    scope: Some(Scope::Database),
                    name: name.to_owned(),
                })
                .ok_or_else(|| InterpolationError::BadReference(format!("${{{inner}}}")));
        }
        Some(_) => return Err(InterpolationError::BadReference(format!("${{{inner}}}"))),
        None => (None, inner),
    };
    EnvKey::parse(name)
        .ok()
        .filter(|k| k.as_str() == name)
        .map(|_| Reference {
            scope,
            name: name.to_owned(),
        })
        .ok_or_else(|| InterpolationError::BadReference(format!("${{{inner}}}")))
}

/// The references a value makes (none for a literal value).
pub fn references(var: &EnvVar) -> Result<Vec<Reference>, InterpolationError> {
    if var.flags.literal {
        return Ok(Vec::new());
    }
    Ok(pieces(&var.value)?
        .into_iter()
        .filter_map(|p| match p {
            Piece::Ref(r) => Some(r),
            _ => None,
        })
        .collect())
}

/// The variables of the three scopes an app's environment is built from.
#[derive(Debug, Clone, Copy)]
pub struct Scopes<'a> {
    pub owner: &'a [EnvVar],
    pub project: &'a [EnvVar],
    pub global: &'a [EnvVar],
    /// The project's managed databases: name and connection URL.
    pub databases: &'a [(String, String)],
}

/// One variable that cannot be resolved, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolveError {
    pub scope: Scope,
    pub key: EnvKey,
    pub error: InterpolationError,
}

impl fmt::Display for ResolveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let prefix = match self.scope {
            Scope::Owner => "",
            Scope::Project => "project.",
            Scope::Global => "global.",
            Scope::Database => "database.",
        };
        write!(f, "{prefix}{}: {}", self.key, self.error)
    }
}

/// Every value of `scope` with its references replaced.
pub fn resolve(
    scopes: Scopes<'_>,
    scope: Scope,
) -> Result<Vec<(EnvVar, String)>, Vec<ResolveError>> {
    let mut resolver = Resolver {
        scopes,
        done: BTreeMap::new(),
        visiting: HashSet::new(),
    };
    let vars = match scope {
        Scope::Owner => scopes.owner,
        Scope::Project => scopes.project,
        Scope::Global => scopes.global,
        Scope::Database => &[],
    };
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for var in vars {
        match resolver.value(scope, var) {
            Ok(value) => out.push((var.clone(), value)),
            Err(error) => errors.push(ResolveError {
                scope,
                key: var.key.clone(),
                error,
            }),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

struct Resolver<'a> {
    scopes: Scopes<'a>,
    done: BTreeMap<(Scope, String), String>,
    visiting: HashSet<(Scope, String)>,
}

impl Resolver<'_> {
    fn value(&mut self, scope: Scope, var: &EnvVar) -> Result<String, InterpolationError> {
        if var.flags.literal {
            return Ok(var.value.clone());
        }
        let id = (scope, var.key.as_str().to_owned());
        if let Some(done) = self.done.get(&id) {
            return Ok(done.clone());
        }
        if self.visiting.len() >= MAX_DEPTH {
            return Err(InterpolationError::TooDeep);
        }
        if !self.visiting.insert(id.clone()) {
            return Err(InterpolationError::Cycle(
                Reference {
                    scope: Some(scope),
                    name: id.1,
                }
                .to_string(),
            ));
        }
        let expanded = self.expand(scope, var);
        self.visiting.remove(&id);
        let out = expanded?;
        self.done.insert(id, out.clone());
        Ok(out)
    }

    /// The value with its references filled in, within the size bound.
    fn expand(&mut self, scope: Scope, var: &EnvVar) -> Result<String, InterpolationError> {
        let mut out = String::with_capacity(var.value.len());
        for piece in pieces(&var.value)? {
            let resolved;
            let text = match piece {
                Piece::Text(t) => t,
                Piece::Dollar => "$",
                Piece::Ref(r) => {
                    resolved = self.reference(scope, &r)?;
                    &resolved
                }
            };
            if out.len() + text.len() > MAX_RESOLVED_BYTES {
                return Err(InterpolationError::TooLong);
            }
            out.push_str(text);
        }
        Ok(out)
    }

    fn reference(&mut self, from: Scope, r: &Reference) -> Result<String, InterpolationError> {
        let target = r.scope.unwrap_or(from);
        if from == Scope::Global && target != Scope::Global {
            return Err(InterpolationError::OutOfScope(r.to_string()));
        }
        if target == Scope::Database {
            if from != Scope::Owner {
                return Err(InterpolationError::OutOfScope(r.to_string()));
            }
            // A URL is taken as it is: it is no template of ours.
            return self
                .scopes
                .databases
                .iter()
                .find(|(name, _)| *name == r.name)
                .map(|(_, url)| url.clone())
                .ok_or_else(|| InterpolationError::Unknown(r.to_string()));
        }
        let vars = match target {
            Scope::Owner => self.scopes.owner,
            Scope::Project => self.scopes.project,
            Scope::Global => self.scopes.global,
            Scope::Database => &[],
        };
        let var = vars
            .iter()
            .find(|v| v.key.as_str() == r.name)
            .ok_or_else(|| InterpolationError::Unknown(r.to_string()))?;
        self.value(target, var)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn var(key: &str, value: &str) -> EnvVar {
        let key = EnvKey::parse(key).unwrap();
        EnvVar {
            flags: EnvFlags {
                secret: false,
                build: false,
                runtime: true,
                literal: false,
            },
            key,
            value: value.to_owned(),
        }
    }

    #[test]
    fn a_doubling_bomb_and_deep_nesting_are_refused_quickly() {
        // A0 = "xxxxxxxx", A(n+1) = "${An}${An}": 30 doublings would be 8 GiB.
        let mut owner = vec![var("A0", "xxxxxxxx")];
        for n in 1..=30 {
            owner.push(var(
                &format!("A{n}"),
                &format!("${{A{}}}${{A{}}}", n - 1, n - 1),
            ));
        }
        let started = std::time::Instant::now();
        let errors = resolve(
            Scopes {
                owner: &owner,
                project: &[],
                global: &[],
                databases: &[],
            },
            Scope::Owner,
        )
        .unwrap_err();
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
        assert!(
            errors
                .iter()
                .any(|e| e.error == InterpolationError::TooLong)
        );
        // The small ones still resolved: only the values past the bound fail.
        assert!(errors.iter().all(|e| e.key.as_str() != "A10"), "{errors:?}");

        let mut chain = vec![var("B0", "end")];
        for n in 1..=MAX_DEPTH + 2 {
            chain.push(var(&format!("B{n}"), &format!("${{B{}}}", n - 1)));
        }
        // The deepest first, so nothing is resolved yet when it is.
        chain.reverse();
        let errors = resolve(
            Scopes {
                owner: &chain,
                project: &[],
                global: &[],
                databases: &[],
            },
            Scope::Owner,
        )
        .unwrap_err();
        assert!(
            errors
                .iter()
                .any(|e| e.error == InterpolationError::TooDeep)
        );
        assert!(
            errors
                .iter()
                .all(|e| e.error != InterpolationError::Cycle(String::new())
                    && !matches!(e.error, InterpolationError::Cycle(_))),
            "a refusal leaves no false cycle behind: {errors:?}"
        );
    }

    #[test]
    fn keys_follow_the_shell_rules_and_say_what_is_wrong() {
        for ok in ["A", "_", "DATABASE_URL", "a1", "_x_9"] {
            assert_eq!(EnvKey::parse(ok).unwrap().as_str(), ok);
        }
        assert_eq!(EnvKey::parse(""), Err(EnvKeyError::Empty));
        assert!(matches!(
            EnvKey::parse("1ABC"),
            Err(EnvKeyError::BadStart(_))
        ));
        assert!(matches!(
            EnvKey::parse("MY-VAR"),
            Err(EnvKeyError::InvalidChar { found: '-', .. })
        ));
        assert!(matches!(
            EnvKey::parse("A.B"),
            Err(EnvKeyError::InvalidChar { found: '.', .. })
        ));
        let message = EnvKey::parse("MY-VAR").unwrap_err().to_string();
        assert!(message.contains("letters, digits and '_'"), "{message}");
    }

    #[test]
    fn debug_never_shows_a_value() {
        let shown = format!("{:?}", var("PASSWORD", "hunter2"));
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn the_diff_names_added_changed_and_removed_keys() {
        let old = [var("A", "1"), var("B", "2"), var("C", "3")];
        let mut b = var("B", "2");
        b.flags.secret = true;
        let new = [var("A", "1"), b, var("D", "4")];
        let changes = diff(&old, &new);
        let kinds: Vec<(&str, &str)> = changes
            .iter()
            .map(|c| (c.kind(), c.key().as_str()))
            .collect();
        assert_eq!(kinds, [("changed", "B"), ("added", "D"), ("removed", "C")]);
        assert!(diff(&old, &old).is_empty());
    }

    #[test]
    fn references_resolve_across_scopes() {
        let owner = [
            var(
                "URL",
                "postgres://${project.DB_USER}@${HOST}/${global.REGION}",
            ),
            var("HOST", "db"),
            var("PRICE", "$$5 and $2y$10$hash"),
        ];
        let project = [var("DB_USER", "app_${global.REGION}")];
        let global = [var("REGION", "eu")];
        let scopes = Scopes {
            owner: &owner,
            project: &project,
            global: &global,
            databases: &[],
        };
        let resolved: Vec<(String, String)> = resolve(scopes, Scope::Owner)
            .unwrap()
            .into_iter()
            .map(|(v, r)| (v.key.to_string(), r))
            .collect();
        assert_eq!(resolved[0].1, "postgres://app_eu@db/eu");
        assert_eq!(resolved[2].1, "$5 and $2y$10$hash");
    }

    #[test]
    fn a_database_reference_is_its_url_and_only_apps_reach_it() {
        let owner = [
            var("DATABASE_URL", "${database.main-db}"),
            var("X", "${database.gone}"),
        ];
        let dbs = [(
            "main-db".to_owned(),
            "postgres://u:p@main-db:5432/u".to_owned(),
        )];
        let scopes = Scopes {
            owner: &owner[..1],
            project: &[],
            global: &[],
            databases: &dbs,
        };
        assert_eq!(
            resolve(scopes, Scope::Owner).unwrap()[0].1,
            "postgres://u:p@main-db:5432/u"
        );
        let scopes = Scopes {
            owner: &owner,
            ..scopes
        };
        let errors = resolve(scopes, Scope::Owner).unwrap_err();
        assert_eq!(
            errors[0].error,
            InterpolationError::Unknown("${database.gone}".into())
        );
        let project = [var("P", "${database.main-db}")];
        let scopes = Scopes {
            owner: &[],
            project: &project,
            global: &[],
            databases: &dbs,
        };
        assert!(matches!(
            resolve(scopes, Scope::Project).unwrap_err()[0].error,
            InterpolationError::OutOfScope(_)
        ));
    }

    #[test]
    fn literal_values_are_taken_as_written() {
        let mut v = var("RAW", "${NOPE} $$");
        v.flags.literal = true;
        let owner = [v];
        let scopes = Scopes {
            owner: &owner,
            project: &[],
            global: &[],
            databases: &[],
        };
        assert_eq!(resolve(scopes, Scope::Owner).unwrap()[0].1, "${NOPE} $$");
    }

    #[test]
    fn unknown_bad_and_circular_references_are_reported() {
        let owner = [
            var("A", "${MISSING}"),
            var("B", "${C}"),
            var("C", "${B}"),
            var("D", "${not-a-name}"),
            var("E", "${project.X"),
            var("F", "${project.NOPE}"),
        ];
        let scopes = Scopes {
            owner: &owner,
            project: &[],
            global: &[],
            databases: &[],
        };
        let errors = resolve(scopes, Scope::Owner).unwrap_err();
        let by_key: HashMap<&str, &InterpolationError> =
            errors.iter().map(|e| (e.key.as_str(), &e.error)).collect();
        assert_eq!(
            by_key["A"],
            &InterpolationError::Unknown("${MISSING}".into())
        );
        assert!(matches!(by_key["B"], InterpolationError::Cycle(_)));
        assert!(matches!(by_key["D"], InterpolationError::BadReference(_)));
        assert_eq!(by_key["E"], &InterpolationError::Unclosed);
        assert_eq!(
            by_key["F"],
            &InterpolationError::Unknown("${project.NOPE}".into())
        );
        let global = [var("G", "${project.X}")];
        let scopes = Scopes {
            owner: &[],
            project: &[],
            global: &global,
            databases: &[],
        };
        assert!(matches!(
            resolve(scopes, Scope::Global).unwrap_err()[0].error,
            InterpolationError::OutOfScope(_)
        ));
    }
}
