//! Step 1: YAML text → a value tree with anchors expanded and `<<` merge
//! keys applied, plus a way back from a key path to its line.

use serde_norway::{Mapping, Value};

use crate::error::Problem;

/// Largest document accepted: the biggest template in Coolify's catalogue
/// is under 40 KiB.
pub const MAX_BYTES: usize = 1 << 20;
/// Deepest merge nesting followed.
const MAX_MERGE_DEPTH: usize = 64;

/// Parses YAML and applies merge keys.
pub fn parse(text: &str) -> Result<Value, Problem> {
    if text.len() > MAX_BYTES {
        return Err(Problem::new(
            None,
            "",
            format!("the file is larger than {MAX_BYTES} bytes"),
        ));
    }
    let mut value: Value = serde_norway::from_str(text).map_err(|e| {
        let line = e.location().map(|l| l.line());
        Problem::new(line, "", format!("not valid YAML: {e}"))
    })?;
    merge(&mut value, 0)?;
    Ok(value)
}

/// Applies `<<` merge keys: a mapping or a list of mappings is merged in
/// (keys written beside `<<` win). A `<<` whose anchor is a *list* of
/// scalars (`volumes: {<<: *shared-volumes}`) stands for that list: strict
/// YAML parsers reject it, but Coolify's templates use it and mean the list.
fn merge(value: &mut Value, depth: usize) -> Result<(), Problem> {
    if depth > MAX_MERGE_DEPTH {
        return Err(Problem::new(None, "", "the document is nested too deeply"));
    }
    match value {
        Value::Mapping(map) => {
            if let Some(merged) = map.remove("<<") {
                match merged {
                    Value::Mapping(from) => merge_into(map, from),
                    Value::Sequence(items) if items.iter().all(Value::is_mapping) => {
                        for item in items {
                            if let Value::Mapping(from) = item {
                                merge_into(map, from);
                            }
                        }
                    }
                    Value::Sequence(items) if map.is_empty() => {
                        *value = Value::Sequence(items);
                        return merge(value, depth + 1);
                    }
                    _ => {
                        return Err(Problem::new(
                            None,
                            "<<",
                            "a merge key takes a mapping, a list of mappings, or (alone) a list",
                        ));
                    }
                }
            }
            if let Value::Mapping(map) = value {
                for (_, v) in map.iter_mut() {
                    merge(v, depth + 1)?;
                }
            }
        }
        Value::Sequence(items) => {
            for item in items {
                merge(item, depth + 1)?;
            }
        }
        Value::Tagged(tagged) => merge(&mut tagged.value, depth + 1)?,
        Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_) => {}
    }
    Ok(())
}

fn merge_into(map: &mut Mapping, from: Mapping) {
    for (k, v) in from {
        if !map.contains_key(&k) {
            map.insert(k, v);
        }
    }
}

/// Finds the line of a key path (`services`, `web`, `privileged`) in block
/// YAML by indentation: values lose their positions once parsed, and a
/// message that names the line is what lets a user fix the file.
#[derive(Debug, Clone)]
pub struct Lines<'a> {
    lines: Vec<&'a str>,
    /// Key path the compose document sits under (`compose` in a berth
    /// template, nothing in a plain compose file).
    root: Vec<String>,
}

impl<'a> Lines<'a> {
    pub fn new(text: &'a str, root: &[&str]) -> Self {
        Lines {
            lines: text.lines().collect(),
            root: root.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    /// 1-based line of `path`'s last key, or of its deepest written parent.
    pub fn find(&self, path: &[&str]) -> Option<usize> {
        let mut start = 0;
        let mut parent_indent: Option<usize> = None;
        let mut found = None;
        let full = self
            .root
            .iter()
            .map(String::as_str)
            .chain(path.iter().copied());
        for key in full {
            let mut hit = None;
            for (n, line) in self.lines.iter().enumerate().skip(start) {
                let trimmed = line.trim_start();
                if trimmed.is_empty() || trimmed.starts_with('#') {
                    continue;
                }
                let indent = line.len() - trimmed.len();
                if parent_indent.is_some_and(|p| indent <= p) {
                    break;
                }
                let item = trimmed.strip_prefix("- ").unwrap_or(trimmed);
                if is_key(item, key) {
                    hit = Some((n, indent));
                    break;
                }
            }
            // A key that is not written out (it came from an anchor) is
            // reported at its nearest written parent.
            let Some((n, indent)) = hit else {
                return found;
            };
            found = Some(n + 1);
            start = n + 1;
            parent_indent = Some(indent);
        }
        found
    }
}

fn is_key(item: &str, key: &str) -> bool {
    let unquoted = [key.to_owned(), format!("\"{key}\""), format!("'{key}'")];
    unquoted.iter().any(|k| {
        item.strip_prefix(k.as_str())
            .is_some_and(|rest| rest.starts_with(':') || rest.starts_with('='))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchors_and_merge_keys_expand_and_local_keys_win() {
        let v = parse(
            "x-env: &env\n  A: one\n  B: two\nservices:\n  web:\n    environment:\n      <<: *env\n      B: mine\n",
        )
        .unwrap();
        let env = &v["services"]["web"]["environment"];
        assert_eq!(env["A"].as_str(), Some("one"));
        assert_eq!(env["B"].as_str(), Some("mine"));
    }

    #[test]
    fn a_list_of_anchors_merges_in_order() {
        let v = parse("a: &a {x: 1}\nb: &b {x: 2, y: 2}\nc:\n  <<: [*a, *b]\n").unwrap();
        assert_eq!(v["c"]["x"].as_u64(), Some(1));
        assert_eq!(v["c"]["y"].as_u64(), Some(2));
    }

    #[test]
    fn merging_a_list_anchor_alone_stands_for_the_list() {
        let v =
            parse("one:\n  volumes: &vols\n    - a:/a\ntwo:\n  volumes:\n    <<: *vols\n").unwrap();
        assert_eq!(v["two"]["volumes"][0].as_str(), Some("a:/a"));
    }

    #[test]
    fn invalid_yaml_names_its_line() {
        let e = parse("services:\n  web:\n    image: [\n").unwrap_err();
        assert!(e.line.is_some(), "{e}");
    }

    #[test]
    fn keys_are_found_by_path_and_indentation() {
        let text = "services:\n  db:\n    image: x\n  web:\n    image: y\n    privileged: true\n";
        let lines = Lines::new(text, &[]);
        assert_eq!(lines.find(&["services", "web", "image"]), Some(5));
        assert_eq!(lines.find(&["services", "web", "privileged"]), Some(6));
        assert_eq!(lines.find(&["services", "db", "privileged"]), Some(2));
        assert_eq!(lines.find(&["volumes"]), None);
    }
}
