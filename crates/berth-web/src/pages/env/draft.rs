//! The environment editor's form as typed (a draft), and turning it into a
//! set of variables against what is saved.
//!
//! Both views post a draft: the row view as `key_N`, `value_N`, flag
//! checkboxes and `orig_N` (the saved key a row started from), the bulk view
//! as one `.env` text. A saved secret is shown as [`MASK`]; a draft that still
//! holds the mask for a saved secret keeps the saved value, so secrets never
//! need to be in the page to survive a save.

use std::collections::{BTreeMap, HashMap, HashSet};

use berth_core::dotenv::{self, LineError};
use berth_core::env::check_value;
use berth_core::{EnvFlags, EnvKey, EnvVar};

/// What a saved secret looks like in the editor.
pub const MASK: &str = "••••••••";
/// Blank rows at the end of the row view, for new variables.
pub const BLANK_ROWS: usize = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Rows,
    Bulk,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Rows => "rows",
            Mode::Bulk => "bulk",
        }
    }
}

/// One row as typed.
#[derive(Clone, Default)]
pub struct RowInput {
    pub key: String,
    pub value: String,
    /// The saved key this row was rendered from; empty for a new row.
    pub orig: String,
    pub secret: bool,
    pub build: bool,
    pub runtime: bool,
    pub literal: bool,
    pub remove: bool,
}

impl RowInput {
    fn is_blank(&self) -> bool {
        self.key.trim().is_empty() && self.value.is_empty() && self.orig.is_empty()
    }

    pub fn masked(&self) -> bool {
        self.value == MASK
    }

    /// Rows for the value's text area.
    pub fn lines(&self) -> usize {
        self.value.lines().count().clamp(1, 20)
    }

    pub fn blank() -> RowInput {
        RowInput {
            runtime: true,
            ..RowInput::default()
        }
    }

    /// A row showing a saved variable (its value masked when it is a secret).
    pub fn from_var(var: &EnvVar, reveal: bool) -> RowInput {
        RowInput {
            key: var.key.to_string(),
            value: if var.flags.secret && !reveal {
                MASK.to_owned()
            } else {
                var.value.clone()
            },
            orig: var.key.to_string(),
            secret: var.flags.secret,
            build: var.flags.build,
            runtime: var.flags.runtime,
            literal: var.flags.literal,
            remove: false,
        }
    }
}

/// The whole editor form as typed.
#[derive(Clone)]
pub struct Draft {
    /// The version the edit started from.
    pub version: i64,
    pub mode: Mode,
    pub text: String,
    pub rows: Vec<RowInput>,
    /// Submit buttons: which one was pressed.
    pub switch: Option<Mode>,
    pub reveal: Option<String>,
    pub more_rows: bool,
    pub redeploy: bool,
}

impl Draft {
    /// The draft of a fresh editor on the saved set.
    pub fn from_saved(version: i64, vars: &[EnvVar], mode: Mode) -> Draft {
        let mut rows: Vec<RowInput> = vars.iter().map(|v| RowInput::from_var(v, false)).collect();
        rows.extend((0..BLANK_ROWS).map(|_| RowInput::blank()));
        Draft {
            version,
            mode,
            text: masked_text(vars),
            rows,
            switch: None,
            reveal: None,
            more_rows: false,
            redeploy: false,
        }
    }

    /// Reads the posted fields (everything but `csrf`).
    pub fn from_pairs(pairs: Vec<(String, String)>) -> Draft {
        let mut draft = Draft {
            version: 0,
            mode: Mode::Rows,
            text: String::new(),
            rows: Vec::new(),
            switch: None,
            reveal: None,
            more_rows: false,
            redeploy: false,
        };
        let mut rows: BTreeMap<usize, RowInput> = BTreeMap::new();
        for (name, value) in pairs {
            match name.as_str() {
                "version" => draft.version = value.trim().parse().unwrap_or(0),
                "mode" => draft.mode = parse_mode(&value).unwrap_or(Mode::Rows),
                // Browsers send text areas with CRLF; the parser reads either.
                "text" => draft.text = value,
                "switch" => draft.switch = parse_mode(&value),
                "reveal" => draft.reveal = Some(value),
                "more" => draft.more_rows = true,
                "redeploy" => draft.redeploy = value == "1",
                _ => {
                    let Some((field, index)) = name.rsplit_once('_') else {
                        continue;
                    };
                    let Ok(index) = index.parse::<usize>() else {
                        continue;
                    };
                    // Bounded by the body limit, but never trust an index to size anything.
                    if index > 10_000 {
                        continue;
                    }
                    let row = rows.entry(index).or_default();
                    match field {
                        "key" => row.key = value,
                        "value" => row.value = value.replace("\r\n", "\n"),
                        "orig" => row.orig = value,
                        "secret" => row.secret = true,
                        "build" => row.build = true,
                        "runtime" => row.runtime = true,
                        "literal" => row.literal = true,
                        "remove" => row.remove = true,
                        _ => {}
                    }
                }
            }
        }
        draft.rows = rows.into_values().collect();
        draft
    }

    /// Adds blank rows at the end when there are fewer than [`BLANK_ROWS`].
    pub fn pad_rows(&mut self, extra: usize) {
        let blank = self.rows.iter().rev().take_while(|r| r.is_blank()).count();
        for _ in blank..BLANK_ROWS + extra {
            self.rows.push(RowInput::blank());
        }
    }
}

fn parse_mode(value: &str) -> Option<Mode> {
    match value {
        "rows" => Some(Mode::Rows),
        "bulk" => Some(Mode::Bulk),
        _ => None,
    }
}

/// The `.env` text of a set with saved secrets masked.
pub fn masked_text(vars: &[EnvVar]) -> String {
    let shown: Vec<EnvVar> = vars
        .iter()
        .map(|v| {
            let mut v = v.clone();
            if v.flags.secret {
                v.value = MASK.to_owned();
                v.flags.literal = false;
            }
            v
        })
        .collect();
    dotenv::render(&shown)
}

/// What is wrong with a draft, where.
#[derive(Debug, Clone, Default)]
pub struct DraftErrors {
    /// Bulk view: by line.
    pub lines: Vec<LineError>,
    /// Row view: by row index.
    pub rows: BTreeMap<usize, String>,
    /// Not tied to a line or row (e.g. a reference that does not resolve).
    pub form: Vec<String>,
}

impl DraftErrors {
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty() && self.rows.is_empty() && self.form.is_empty()
    }

    pub fn row(&self, index: impl std::borrow::Borrow<usize>) -> &str {
        self.rows.get(index.borrow()).map_or("", String::as_str)
    }
}

/// The set the draft describes, resolving masks against `saved`.
pub fn to_vars(draft: &Draft, saved: &[EnvVar]) -> Result<Vec<EnvVar>, DraftErrors> {
    match draft.mode {
        Mode::Bulk => bulk_vars(&draft.text, saved),
        Mode::Rows => row_vars(&draft.rows, saved),
    }
}

fn bulk_vars(text: &str, saved: &[EnvVar]) -> Result<Vec<EnvVar>, DraftErrors> {
    let entries = dotenv::parse(text).map_err(|lines| DraftErrors {
        lines,
        ..DraftErrors::default()
    })?;
    let by_key: HashMap<&str, &EnvVar> = saved.iter().map(|v| (v.key.as_str(), v)).collect();
    Ok(entries
        .into_iter()
        .map(|entry| match by_key.get(entry.key.as_str()) {
            Some(old) if old.flags.secret && entry.value == MASK => (*old).clone(),
            // The same value, written in the interpolated form a literal
            // value with a quote renders as: unchanged.
            Some(old)
                if old.flags.literal
                    && !entry.literal
                    && entry.value == old.value.replace('$', "$$") =>
            {
                (*old).clone()
            }
            Some(old) => EnvVar {
                key: entry.key,
                value: entry.value,
                flags: EnvFlags {
                    literal: entry.literal,
                    ..old.flags
                },
            },
            None => {
                let mut flags = EnvFlags::default_for(&entry.key);
                flags.literal = entry.literal;
                EnvVar {
                    key: entry.key,
                    value: entry.value,
                    flags,
                }
            }
        })
        .collect())
}

fn row_vars(rows: &[RowInput], saved: &[EnvVar]) -> Result<Vec<EnvVar>, DraftErrors> {
    let by_key: HashMap<&str, &EnvVar> = saved.iter().map(|v| (v.key.as_str(), v)).collect();
    let mut errors = DraftErrors::default();
    let mut seen: HashSet<String> = HashSet::new();
    let mut vars = Vec::new();
    for (index, row) in rows.iter().enumerate() {
        if row.remove || row.is_blank() {
            continue;
        }
        let key = match EnvKey::parse(&row.key) {
            Ok(key) => key,
            Err(e) => {
                errors.rows.insert(index, e.to_string());
                continue;
            }
        };
        if !seen.insert(key.as_str().to_owned()) {
            errors
                .rows
                .insert(index, format!("{key} is already set in a row above"));
            continue;
        }
        let kept = by_key
            .get(row.orig.as_str())
            .filter(|old| old.flags.secret && row.masked());
        let value = match kept {
            Some(old) => old.value.clone(),
            None => row.value.clone(),
        };
        if let Err(e) = check_value(&value) {
            errors.rows.insert(index, e.to_string());
            continue;
        }
        if !row.build && !row.runtime {
            errors.rows.insert(
                index,
                "choose build-time, runtime or both, or remove the variable".to_owned(),
            );
            continue;
        }
        vars.push(EnvVar {
            key,
            value,
            flags: EnvFlags {
                secret: row.secret,
                build: row.build,
                runtime: row.runtime,
                literal: row.literal,
            },
        });
    }
    if errors.is_empty() {
        Ok(vars)
    } else {
        Err(errors)
    }
}

/// Rows for `vars`, keeping saved secrets masked unless their key is in `reveal`.
pub fn rows_for(vars: &[EnvVar], saved: &[EnvVar], reveal: Option<&str>) -> Vec<RowInput> {
    let saved_secrets: HashMap<&str, &EnvVar> = saved
        .iter()
        .filter(|v| v.flags.secret)
        .map(|v| (v.key.as_str(), v))
        .collect();
    vars.iter()
        .map(|v| {
            let unchanged = saved_secrets
                .get(v.key.as_str())
                .is_some_and(|old| old.value == v.value);
            let show = !unchanged || reveal == Some(v.key.as_str());
            let mut row = RowInput::from_var(v, show);
            if !saved_secrets.contains_key(v.key.as_str()) {
                row.orig.clear();
            }
            row
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn saved() -> Vec<EnvVar> {
        let mut token = EnvVar {
            key: EnvKey::parse("API_TOKEN").unwrap(),
            value: "hunter2".into(),
            flags: EnvFlags::default_for(&EnvKey::parse("API_TOKEN").unwrap()),
        };
        token.flags.build = true;
        vec![
            token,
            EnvVar {
                key: EnvKey::parse("PORT").unwrap(),
                value: "8080".into(),
                flags: EnvFlags::default_for(&EnvKey::parse("PORT").unwrap()),
            },
        ]
    }

    fn bulk(text: &str) -> Draft {
        let mut d = Draft::from_saved(1, &saved(), Mode::Bulk);
        d.text = text.to_owned();
        d
    }

    #[test]
    fn the_masked_bulk_text_saves_back_to_the_same_set() {
        let draft = Draft::from_saved(1, &saved(), Mode::Bulk);
        assert!(!draft.text.contains("hunter2"), "{}", draft.text);
        assert_eq!(to_vars(&draft, &saved()).unwrap(), saved());
    }

    #[test]
    fn the_masked_rows_save_back_to_the_same_set() {
        let draft = Draft::from_saved(1, &saved(), Mode::Rows);
        assert!(draft.rows.iter().all(|r| r.value != "hunter2"));
        assert_eq!(to_vars(&draft, &saved()).unwrap(), saved());
    }

    #[test]
    fn bulk_keeps_flags_of_known_keys_and_defaults_new_ones() {
        let vars = to_vars(&bulk("API_TOKEN=new\nDB_PASSWORD=x\nLOG=debug\n"), &saved()).unwrap();
        assert!(vars[0].flags.secret && vars[0].flags.build);
        assert_eq!(vars[0].value, "new");
        assert!(vars[1].flags.secret, "a password looks secret");
        assert!(!vars[2].flags.secret && vars[2].flags.runtime);
    }

    #[test]
    fn saving_the_bulk_view_replaces_the_set_exactly() {
        let vars = to_vars(&bulk("PORT=9090\n"), &saved()).unwrap();
        assert_eq!(vars.len(), 1);
        assert_eq!(vars[0].value, "9090");
    }

    #[test]
    fn the_mask_is_only_kept_for_a_saved_secret() {
        // A new key typed with the mask gets the mask as its value, not someone's secret.
        let vars = to_vars(&bulk(&format!("OTHER={MASK}\n")), &saved()).unwrap();
        assert_eq!(vars[0].value, MASK);
    }

    #[test]
    fn row_errors_point_at_their_rows() {
        let mut draft = Draft::from_saved(1, &saved(), Mode::Rows);
        draft.rows[2].key = "BAD-KEY".into();
        draft.rows[2].value = "x".into();
        draft.rows[3].key = "PORT".into();
        draft.rows[3].runtime = true;
        let errors = to_vars(&draft, &saved()).unwrap_err();
        assert!(errors.row(2).contains("letters, digits"), "{errors:?}");
        assert!(errors.row(3).contains("already set"), "{errors:?}");
    }

    #[test]
    fn posted_fields_become_rows_in_order() {
        let pairs = vec![
            ("version".into(), "3".into()),
            ("mode".into(), "rows".into()),
            ("key_1".into(), "B".into()),
            ("value_1".into(), "two\r\nlines".into()),
            ("runtime_1".into(), "on".into()),
            ("key_0".into(), "A".into()),
            ("value_0".into(), "1".into()),
            ("secret_0".into(), "on".into()),
            ("build_0".into(), "on".into()),
        ];
        let draft = Draft::from_pairs(pairs);
        assert_eq!(draft.version, 3);
        let vars = to_vars(&draft, &[]).unwrap();
        assert_eq!(vars[0].key.as_str(), "A");
        assert!(vars[0].flags.secret && vars[0].flags.build && !vars[0].flags.runtime);
        assert_eq!(vars[1].value, "two\nlines");
    }
}
