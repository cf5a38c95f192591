//! The inventory kept beside the policy set: the resources the PDP knows
//! (`resources.jsonl`) and the action catalog (`actions.txt`), read from the policy
//! directory, validated, indexed for resource search and published in the same
//! [`crate::state::Snapshot`] as the set. Both files are optional; without them resource
//! search finds nothing and action search knows only the actions the policies name.
//!
//! The index keeps each resource type's resources sorted by id (so a glob's literal prefix
//! is a range) and, per tag key and value, the positions of the resources carrying it
//! (posting lists, for tag equality).

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, Read};
use std::path::Path;

/// The resources file of a policy directory.
pub const RESOURCES_FILE: &str = "resources.jsonl";
/// The action catalog of a policy directory.
pub const ACTIONS_FILE: &str = "actions.txt";
/// Most resources in the inventory.
pub const MAX_RESOURCES: usize = 1_000_000;
/// Longest line of `resources.jsonl`, in bytes.
pub const MAX_LINE_BYTES: usize = 64 * 1024;
/// Largest `resources.jsonl`, in bytes.
pub const MAX_RESOURCES_BYTES: u64 = 512 * 1024 * 1024;
/// Most tags on one resource.
pub const MAX_TAGS: usize = 64;
/// Longest id, type, tag key or tag value, and action name, in bytes.
pub const MAX_FIELD_BYTES: usize = crate::decider::DEFAULT_LIMITS.max_field_bytes;
/// Most actions in the catalog.
pub const MAX_ACTIONS: usize = 10_000;
/// Most problems one load reports (the rest are counted).
const MAX_PROBLEMS: usize = 20;

/// One resource as `resources.jsonl` states it.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawResource {
    id: serde_json::Value,
    #[serde(rename = "type")]
    kind: serde_json::Value,
    #[serde(default)]
    tags: Option<serde_json::Value>,
}

/// A resource of the inventory.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Its id as the file states it.
    pub id: String,
    /// Its type.
    pub kind: String,
    /// The resource as decisions see it: id `<type>:<id>` (an ARN as is) and its tags.
    pub resource: pdp_engine::Resource,
}

/// The resources of one type, sorted by their decision id, with tag posting lists.
#[derive(Debug, Default)]
pub struct TypeIndex {
    /// Sorted by `resource.id`, each id once.
    pub entries: Vec<Entry>,
    /// (tag key lower-cased, value) -> ascending positions in `entries`.
    postings: HashMap<(String, String), Vec<u32>>,
}

impl TypeIndex {
    /// The positions of the resources whose id starts with `prefix`.
    pub fn prefix_range(&self, prefix: &str) -> std::ops::Range<u32> {
        let lo = self
            .entries
            .partition_point(|e| e.resource.id.as_str() < prefix);
        let len = self.entries.get(lo..).map_or(0, |rest| {
            rest.partition_point(|e| e.resource.id.starts_with(prefix))
        });
        to_u32(lo)..to_u32(lo + len)
    }

    /// The positions of the resources carrying tag `key` (ASCII case ignored) with `value`.
    pub fn tagged(&self, key: &str, value: &str) -> &[u32] {
        self.postings
            .get(&(key.to_ascii_lowercase(), value.to_owned()))
            .map_or(&[], Vec::as_slice)
    }

    /// The first position after the resource with decision id `id` (where a page that
    /// ended there goes on).
    pub fn after(&self, id: &str) -> u32 {
        to_u32(
            self.entries
                .partition_point(|e| e.resource.id.as_str() <= id),
        )
    }

    /// How many resources there are.
    pub fn len(&self) -> u32 {
        to_u32(self.entries.len())
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

fn to_u32(n: usize) -> u32 {
    // INVARIANT: an inventory holds at most MAX_RESOURCES entries.
    debug_assert!(n <= MAX_RESOURCES);
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The inventory: resources by type, and the action catalog.
#[derive(Debug, Default)]
pub struct Inventory {
    types: BTreeMap<String, TypeIndex>,
    /// Decision id -> (type, position).
    by_id: HashMap<String, (String, u32)>,
    /// The catalog's actions, as written, sorted.
    actions: Vec<String>,
    revision: String,
}

/// Why the inventory could not be loaded: every problem, each naming file, line and field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.join("; "))]
pub struct InventoryError(pub Vec<String>);

impl Inventory {
    /// No resources and no catalog.
    pub fn empty() -> Inventory {
        Inventory {
            // As a directory without either file.
            revision: revision_of(&[b"", b""]),
            ..Inventory::default()
        }
    }

    /// The inventory of `dir` (`resources.jsonl`, `actions.txt`; each optional).
    pub fn load_dir(dir: &Path) -> Result<Inventory, InventoryError> {
        let canonical = dir
            .canonicalize()
            .map_err(|e| InventoryError(vec![format!("`{}`: {e}", dir.display())]))?;
        let resources = read_file(&canonical, &dir.join(RESOURCES_FILE), MAX_RESOURCES_BYTES)?;
        let actions = read_file(
            &canonical,
            &dir.join(ACTIONS_FILE),
            (MAX_ACTIONS * (MAX_FIELD_BYTES + 1)) as u64,
        )?;
        let origin = |name: &str| dir.join(name).display().to_string();
        Inventory::parse(
            &origin(RESOURCES_FILE),
            resources.as_deref().unwrap_or_default(),
            &origin(ACTIONS_FILE),
            actions.as_deref().unwrap_or_default(),
        )
    }

    /// The inventory of the texts of `resources.jsonl` and `actions.txt` (named
    /// `resources_origin` and `actions_origin` in errors).
    pub fn parse(
        resources_origin: &str,
        resources: &[u8],
        actions_origin: &str,
        actions: &[u8],
    ) -> Result<Inventory, InventoryError> {
        let mut problems = Problems::default();
        let entries = parse_resources(resources_origin, resources, &mut problems);
        let catalog = parse_actions(actions_origin, actions, &mut problems);
        if !problems.list.is_empty() {
            return Err(problems.finish());
        }
        let revision = revision_of(&[resources, actions]);
        let actions = catalog;
        let mut grouped: BTreeMap<String, Vec<Entry>> = BTreeMap::new();
        for e in entries {
            grouped.entry(e.kind.clone()).or_default().push(e);
        }
        let mut types = BTreeMap::new();
        let mut by_id = HashMap::new();
        for (kind, mut entries) in grouped {
            entries.sort_by(|a, b| a.resource.id.cmp(&b.resource.id));
            let mut postings: HashMap<(String, String), Vec<u32>> = HashMap::new();
            for (at, e) in entries.iter().enumerate() {
                let at = to_u32(at);
                for (k, v) in e.resource.tags.iter() {
                    postings
                        .entry((k.as_str().to_ascii_lowercase(), v.to_string()))
                        .or_default()
                        .push(at);
                }
                by_id.insert(e.resource.id.to_string(), (kind.clone(), at));
            }
            types.insert(kind, TypeIndex { entries, postings });
        }
        Ok(Inventory {
            types,
            by_id,
            actions,
            revision,
        })
    }

    /// The resources of type `kind`.
    pub fn of_type(&self, kind: &str) -> Option<&TypeIndex> {
        self.types.get(kind)
    }

    /// The resource whose decision id is `id`.
    pub fn resource(&self, id: &str) -> Option<&Entry> {
        let (kind, at) = self.by_id.get(id)?;
        self.types.get(kind)?.entries.get(*at as usize)
    }

    /// The catalog's actions, sorted.
    pub fn actions(&self) -> &[String] {
        &self.actions
    }

    /// How many resources there are.
    pub fn resource_count(&self) -> usize {
        self.by_id.len()
    }

    /// A digest of both files (16 hex digits): page tokens carry it.
    pub fn revision(&self) -> &str {
        &self.revision
    }
}

fn revision_of(parts: &[&[u8]]) -> String {
    use sha2::Digest;
    let mut hash = sha2::Sha256::new();
    for p in parts {
        hash.update((p.len() as u64).to_le_bytes());
        hash.update(p);
    }
    hash.finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The text of `path` when it exists (links only inside the directory), up to `max` bytes.
fn read_file(canonical: &Path, path: &Path, max: u64) -> Result<Option<Vec<u8>>, InventoryError> {
    let fail = |m: String| InventoryError(vec![format!("`{}`: {m}", path.display())]);
    if std::fs::symlink_metadata(path).is_err() {
        return Ok(None);
    }
    let Some(target) = pdp_engine::contained_file(canonical, path).map_err(fail)? else {
        return Ok(None);
    };
    let file = std::fs::File::open(&target).map_err(|e| fail(e.to_string()))?;
    let mut text = Vec::new();
    file.take(max + 1)
        .read_to_end(&mut text)
        .map_err(|e| fail(e.to_string()))?;
    if text.len() as u64 > max {
        return Err(fail(format!("over the limit of {max} bytes")));
    }
    Ok(Some(text))
}

#[derive(Default)]
struct Problems {
    list: Vec<String>,
    more: usize,
}

impl Problems {
    fn push(&mut self, problem: String) {
        if self.list.len() < MAX_PROBLEMS {
            self.list.push(problem);
        } else {
            self.more += 1;
        }
    }

    fn finish(mut self) -> InventoryError {
        if self.more > 0 {
            self.list.push(format!("and {} more problems", self.more));
        }
        InventoryError(self.list)
    }
}

/// A string field of a resource line: present, a string, not empty, bounded.
fn text_field(value: &serde_json::Value, field: &str) -> Result<String, String> {
    match value {
        serde_json::Value::String(s) if s.is_empty() => {
            Err(format!("`{field}`: must not be empty"))
        }
        serde_json::Value::String(s) if s.len() > MAX_FIELD_BYTES => Err(format!(
            "`{field}`: {} bytes, over the limit of {MAX_FIELD_BYTES}",
            s.len()
        )),
        serde_json::Value::String(s) => Ok(s.clone()),
        _ => Err(format!("`{field}`: must be a string")),
    }
}

fn parse_resource(line: &[u8]) -> Result<Entry, String> {
    let raw: RawResource = serde_json::from_slice(line).map_err(|e| {
        format!("not a resource object (`{{\"id\": …, \"type\": …, \"tags\": {{…}}}}`): {e}")
    })?;
    let id = text_field(&raw.id, "id")?;
    let kind = text_field(&raw.kind, "type")?;
    let mut tags = Vec::new();
    match raw.tags {
        None | Some(serde_json::Value::Null) => {}
        Some(serde_json::Value::Object(members)) => {
            if members.len() > MAX_TAGS {
                return Err(format!(
                    "`tags`: {} tags, over the limit of {MAX_TAGS}",
                    members.len()
                ));
            }
            for (k, v) in members {
                if k.is_empty() || k.len() > MAX_FIELD_BYTES {
                    return Err(format!(
                        "`tags`: a key must have 1 to {MAX_FIELD_BYTES} bytes"
                    ));
                }
                // A tag value may be empty.
                let v = match v {
                    serde_json::Value::String(s) if s.len() <= MAX_FIELD_BYTES => s,
                    serde_json::Value::String(s) => {
                        return Err(format!(
                            "`tags.{k}`: {} bytes, over the limit of {MAX_FIELD_BYTES}",
                            s.len()
                        ))
                    }
                    _ => return Err(format!("`tags.{k}`: must be a string")),
                };
                tags.push((
                    pdp_engine::Text::from(k.as_str()),
                    pdp_engine::Text::from(v),
                ));
            }
        }
        Some(_) => return Err("`tags`: must be an object of strings".to_owned()),
    }
    let name = crate::authzen::resource_name(&kind, &id);
    Ok(Entry {
        resource: pdp_engine::Resource {
            id: name.into(),
            tags: tags.into_iter().collect(),
        },
        id,
        kind,
    })
}

fn parse_resources(origin: &str, text: &[u8], problems: &mut Problems) -> Vec<Entry> {
    let mut entries = Vec::new();
    // Decision id -> the line that first named it.
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut reader = std::io::BufReader::new(text);
    let mut line = Vec::new();
    let mut number = 0usize;
    loop {
        line.clear();
        // Reading from memory cannot fail.
        let Ok(read) = (&mut reader)
            .take(MAX_LINE_BYTES as u64 + 1)
            .read_until(b'\n', &mut line)
        else {
            break;
        };
        if read == 0 {
            break;
        }
        number += 1;
        if line.len() > MAX_LINE_BYTES && !line.ends_with(b"\n") {
            problems.push(format!(
                "{origin}:{number}: the line is over the limit of {MAX_LINE_BYTES} bytes"
            ));
            // Skip the rest of the line.
            let mut rest = Vec::new();
            let _ = reader.read_until(b'\n', &mut rest);
            continue;
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if entries.len() == MAX_RESOURCES {
            problems.push(format!(
                "{origin}:{number}: more than {MAX_RESOURCES} resources"
            ));
            break;
        }
        match parse_resource(&line) {
            Ok(e) => {
                let name = e.resource.id.to_string();
                if let Some(first) = seen.get(&name) {
                    problems.push(format!(
                        "{origin}:{number}: `id`: the resource `{name}` is also on line {first}"
                    ));
                    continue;
                }
                seen.insert(name, number);
                entries.push(e);
            }
            Err(why) => problems.push(format!("{origin}:{number}: {why}")),
        }
    }
    entries
}

fn parse_actions(origin: &str, text: &[u8], problems: &mut Problems) -> Vec<String> {
    let Ok(text) = std::str::from_utf8(text) else {
        problems.push(format!("{origin}: not UTF-8 text"));
        return Vec::new();
    };
    let mut actions: Vec<String> = Vec::new();
    // Folded name -> its line (actions compare ignoring case).
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let number = n + 1;
        let action = line.trim();
        if action.is_empty() || action.starts_with('#') {
            continue;
        }
        let problem = if action.len() > MAX_FIELD_BYTES {
            Some(format!("over the limit of {MAX_FIELD_BYTES} bytes"))
        } else if action.contains(['*', '?']) {
            Some("an action of the catalog names one action: no `*` or `?`".to_owned())
        } else if action.contains(char::is_whitespace) {
            Some("an action has no spaces".to_owned())
        } else if !action
            .split_once(':')
            .is_some_and(|(s, a)| !s.is_empty() && !a.is_empty())
        {
            Some("an action is `service:name`".to_owned())
        } else {
            None
        };
        if let Some(why) = problem {
            problems.push(format!("{origin}:{number}: `{action}`: {why}"));
            continue;
        }
        let folded = action.to_lowercase();
        if let Some(first) = seen.get(&folded) {
            problems.push(format!(
                "{origin}:{number}: `{action}`: also on line {first} (actions compare ignoring case)"
            ));
            continue;
        }
        if actions.len() == MAX_ACTIONS {
            problems.push(format!(
                "{origin}:{number}: more than {MAX_ACTIONS} actions"
            ));
            break;
        }
        seen.insert(folded, number);
        actions.push(action.to_owned());
    }
    actions.sort();
    actions
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;

    fn parse(resources: &str, actions: &str) -> Result<Inventory, InventoryError> {
        Inventory::parse("r.jsonl", resources.as_bytes(), "a.txt", actions.as_bytes())
    }

    #[test]
    fn resources_are_indexed_by_type_id_and_tag() {
        let inv = parse(
            concat!(
                r#"{"id": "b", "type": "doc", "tags": {"Owner": "alice"}}"#,
                "\n\n",
                r#"{"id": "a", "type": "doc", "tags": {"owner": "bob"}}"#,
                "\n",
                r#"{"id": "arn:aws:s3:::x/1", "type": "s3"}"#,
                "\n"
            ),
            "# comment\ndoc:read\n",
        )
        .unwrap();
        let docs = inv.of_type("doc").unwrap();
        let ids: Vec<&str> = docs
            .entries
            .iter()
            .map(|e| e.resource.id.as_str())
            .collect();
        assert_eq!(ids, ["doc:a", "doc:b"]);
        assert_eq!(docs.prefix_range("doc:b"), 1..2);
        assert_eq!(docs.prefix_range("doc:"), 0..2);
        assert_eq!(docs.prefix_range("x"), 2..2);
        assert_eq!(docs.tagged("OWNER", "alice"), [1]);
        assert_eq!(docs.after("doc:a"), 1);
        assert_eq!(
            inv.resource("arn:aws:s3:::x/1").unwrap().id,
            "arn:aws:s3:::x/1"
        );
        assert_eq!(inv.actions(), ["doc:read"]);
        assert_eq!(inv.resource_count(), 3);
    }

    #[test]
    fn problems_name_file_line_and_field() {
        let err = parse(
            concat!(
                r#"{"id": "a", "type": "doc"}"#,
                "\n",
                r#"{"id": "a", "type": "doc"}"#,
                "\n",
                r#"{"id": 3, "type": "doc"}"#,
                "\n",
                r#"{"id": "c"}"#,
                "\n",
                r#"{"id": "d", "type": "doc", "tags": {"k": 1}}"#,
                "\n",
                r#"{"id": "e", "type": "doc", "owner": "x"}"#,
                "\n"
            ),
            "doc:read\nDOC:READ\ndoc:*\n",
        )
        .unwrap_err()
        .0;
        assert!(
            err[0].starts_with("r.jsonl:2: `id`: the resource `doc:a` is also on line 1"),
            "{err:?}"
        );
        assert!(
            err[1].starts_with("r.jsonl:3: `id`: must be a string"),
            "{err:?}"
        );
        assert!(
            err[2].starts_with("r.jsonl:4: not a resource object") && err[2].contains("type"),
            "{err:?}"
        );
        assert!(
            err[3].starts_with("r.jsonl:5: `tags.k`: must be a string"),
            "{err:?}"
        );
        assert!(
            err[4].starts_with("r.jsonl:6: not a resource object") && err[4].contains("owner"),
            "{err:?}"
        );
        assert!(
            err[5].starts_with("a.txt:2: `DOC:READ`: also on line 1"),
            "{err:?}"
        );
        assert!(err[6].starts_with("a.txt:3: `doc:*`"), "{err:?}");
    }

    #[test]
    fn overlong_lines_are_refused() {
        let long = format!(
            r#"{{"id": "{}", "type": "doc"}}"#,
            "x".repeat(MAX_LINE_BYTES)
        );
        let err = parse(
            &format!("{long}\n{{\"id\": \"ok\", \"type\": \"doc\"}}\n"),
            "",
        )
        .unwrap_err()
        .0;
        assert_eq!(err.len(), 1, "{err:?}");
        assert!(
            err[0].starts_with("r.jsonl:1: the line is over the limit"),
            "{err:?}"
        );
    }

    #[test]
    fn the_revision_follows_the_content() {
        let a = parse(r#"{"id": "a", "type": "doc"}"#, "").unwrap();
        let b = parse(r#"{"id": "b", "type": "doc"}"#, "").unwrap();
        assert_ne!(a.revision(), b.revision());
        assert_eq!(a.revision().len(), 16);
        assert_eq!(
            Inventory::empty().revision(),
            parse("", "").unwrap().revision()
        );
    }
}
