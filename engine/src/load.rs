//! Loading a policy directory: which files are policies, the bindings, links kept inside
//! the directory, reads bounded in size.
//!
//! The only file access of the engine. It knows nothing of what other components keep in
//! the same directory: the caller names the files to leave out ([`LoadOptions`]).

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::{CompileError, LoadError};
use crate::set::{Format, PolicySet, BINDINGS_FILE, MAX_DOCUMENT_BYTES, MAX_POLICIES};

/// What [`PolicySet::load_dir_with`] leaves out of a policy directory: files that other
/// components keep beside the policies, named by the caller.
///
/// ```
/// use pdp_engine::LoadOptions;
///
/// // A directory that also holds `gateway.yaml`, which is not a policy.
/// let options = LoadOptions::new().skip("gateway.yaml");
/// assert!(options.skips("gateway.yaml") && !options.skips("read.yaml"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadOptions {
    skip: Vec<String>,
}

impl LoadOptions {
    /// Every `*.json`, `*.yaml` and `*.yml` file is a policy (but the bindings).
    pub fn new() -> Self {
        Self::default()
    }

    /// Leaves out the file named `file_name` (compared exactly, without a directory): it is
    /// neither read nor counted.
    #[must_use]
    pub fn skip(mut self, file_name: impl Into<String>) -> Self {
        self.skip.push(file_name.into());
        self
    }

    /// Whether the file named `file_name` is left out.
    pub fn skips(&self, file_name: &str) -> bool {
        self.skip.iter().any(|s| s == file_name)
    }
}

impl PolicySet {
    /// Loads `DIR/*.json`, `DIR/*.yaml`/`*.yml` (one policy each, named by file stem) and
    /// `DIR/bindings.yaml`. Sub-directories (such as `tests/`) are not read; a symbolic link
    /// is read only if it resolves to a file inside `DIR` (one leaving it is an error of the
    /// set, see [`contained_file`]). Other files with those extensions are policies too: to
    /// leave some out, use [`PolicySet::load_dir_with`].
    pub fn load_dir(dir: impl AsRef<Path>) -> Result<PolicySet, LoadError> {
        Self::load_dir_with(dir, &LoadOptions::new())
    }

    /// [`PolicySet::load_dir`], leaving out the files `options` names.
    pub fn load_dir_with(
        dir: impl AsRef<Path>,
        options: &LoadOptions,
    ) -> Result<PolicySet, LoadError> {
        let dir = dir.as_ref();
        let io = |path: &Path, source| LoadError::Io {
            path: path.display().to_string(),
            source,
        };
        let canonical = dir.canonicalize().map_err(|e| io(dir, e))?;
        // Not `is_file`, which follows links: links are resolved below, within `dir` only.
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .map_err(|e| io(dir, e))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .collect();
        entries.sort();
        let mut builder = PolicySet::builder();
        let mut seen: BTreeMap<String, String> = BTreeMap::new();
        let mut count = 0usize;
        for path in entries {
            let file_name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_owned();
            let ext = path
                .extension()
                .and_then(|e| e.to_str())
                .unwrap_or_default();
            let format = match ext {
                "json" => Format::Json,
                "yaml" | "yml" => Format::Yaml,
                _ => continue,
            };
            if options.skips(&file_name) {
                continue;
            }
            let origin = path.display().to_string();
            let target = match contained_file(&canonical, &path) {
                Ok(Some(target)) => target,
                Ok(None) => continue,
                Err(message) => {
                    builder.error(CompileError {
                        file: origin,
                        statement: None,
                        sid: None,
                        field: None,
                        message,
                    });
                    continue;
                }
            };
            let text = read_bounded(&target).map_err(|e| io(&path, e))?;
            if file_name == BINDINGS_FILE || file_name == "bindings.yml" {
                builder = builder.bindings_yaml(&origin, &text);
                continue;
            }
            count += 1;
            if count > MAX_POLICIES {
                builder.error(CompileError {
                    file: dir.display().to_string(),
                    statement: None,
                    sid: None,
                    field: None,
                    message: format!("more than {MAX_POLICIES} policy documents"),
                });
                break;
            }
            let name = path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default()
                .to_owned();
            if let Some(other) = seen.insert(name.clone(), origin.clone()) {
                builder.error(CompileError {
                    file: origin.clone(),
                    statement: None,
                    sid: None,
                    field: None,
                    message: format!("policy name `{name}` is also used by `{other}`"),
                });
                continue;
            }
            builder = builder.policy_text(&name, &origin, format, &text);
        }
        if !builder.has_bindings() {
            builder.set_bindings_origin(dir.join(BINDINGS_FILE).display().to_string());
        }
        Ok(builder.build()?)
    }
}

/// Where to read `path`, an entry of the policy directory whose canonical path is `dir`:
/// `Some` for a regular file, or a symbolic link that resolves to a regular file inside
/// `dir` (as Kubernetes mounts a ConfigMap); `None` for what is not read (a directory,
/// a special file, a link to either inside `dir`); an error for a link that resolves
/// outside `dir` or cannot be resolved. The error names the link only: neither where it
/// points nor anything of the file there.
pub fn contained_file(dir: &Path, path: &Path) -> Result<Option<std::path::PathBuf>, String> {
    let meta = std::fs::symlink_metadata(path)
        .map_err(|e| format!("cannot read the directory entry: {e}"))?;
    if !meta.file_type().is_symlink() {
        return Ok(meta.is_file().then(|| path.to_path_buf()));
    }
    let Ok(target) = path.canonicalize() else {
        return Err("symbolic link that cannot be resolved; not read".to_owned());
    };
    if !target.starts_with(dir) {
        return Err("symbolic link to a file outside the policy directory; not read".to_owned());
    }
    Ok(std::fs::metadata(&target)
        .is_ok_and(|m| m.is_file())
        .then_some(target))
}

fn read_bounded(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let file = std::fs::File::open(path)?;
    let mut text = String::new();
    file.take(MAX_DOCUMENT_BYTES as u64 + 1)
        .read_to_string(&mut text)?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    #[test]
    #[allow(clippy::unwrap_used)]
    fn only_the_files_the_caller_names_are_left_out() {
        let dir = std::env::temp_dir().join(format!("pdp-skip-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let doc = r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}}"#;
        std::fs::write(dir.join("read.json"), doc).unwrap();
        std::fs::write(
            dir.join("bindings.yaml"),
            "roles: { R: { policies: [read] } }\n",
        )
        .unwrap();
        // Not a policy document: read as one, it fails the set.
        std::fs::write(dir.join("gateway.yaml"), "routes: []\n").unwrap();
        std::fs::write(dir.join("notes.txt"), "not read\n").unwrap();
        let err = super::PolicySet::load_dir(&dir).unwrap_err().to_string();
        assert!(err.contains("gateway.yaml"), "{err}");
        let options = super::LoadOptions::new().skip("gateway.yaml");
        let set = super::PolicySet::load_dir_with(&dir, &options).unwrap();
        assert_eq!(set.policy_names().collect::<Vec<_>>(), ["read"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    #[allow(clippy::unwrap_used)]
    fn links_are_read_only_inside_the_policy_directory() {
        let root = std::env::temp_dir().join(format!("pdp-links-{}", std::process::id()));
        let dir = root.join("policies");
        let outside = root.join("outside");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        let doc = r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}}"#;
        std::fs::write(dir.join("real.json"), doc).unwrap();
        std::fs::write(outside.join("secret.yaml"), "password: hunter2\n").unwrap();
        std::os::unix::fs::symlink(dir.join("real.json"), dir.join("inside.json")).unwrap();
        assert_eq!(
            super::PolicySet::load_dir(&dir)
                .unwrap()
                .policy_names()
                .count(),
            2
        );
        std::os::unix::fs::symlink(outside.join("secret.yaml"), dir.join("leak.yaml")).unwrap();
        let err = super::PolicySet::load_dir(&dir).unwrap_err().to_string();
        assert!(
            err.contains("leak.yaml") && err.contains("outside the policy directory"),
            "{err}"
        );
        assert!(
            !err.contains("password") && !err.contains("hunter2") && !err.contains("secret"),
            "{err}"
        );
        std::fs::remove_dir_all(&root).unwrap();
    }
}
