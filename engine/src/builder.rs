//! Building a set from documents in memory: [`PolicySetBuilder`] parses each document as
//! it is added (bounded in size and nesting), hands it to the compiler, and `build`
//! compiles the bindings and returns the set or every problem found.
//!
//! It reads no files (`crate::load` does) and lays out nothing itself (`crate::compile`).

use crate::error::{CompileError, CompileErrors};
use crate::set::{Bindings, Format, PolicySet, BINDINGS_FILE, MAX_DOCUMENT_BYTES};

/// Collects documents and bindings, then compiles them into a [`PolicySet`]. Each document
/// is compiled as it is added (so the builder keeps no parsed documents); `build` adds the
/// bindings and reports every problem found in all of them.
#[derive(Debug, Default)]
pub struct PolicySetBuilder {
    pub(crate) compiled: crate::compile::Compiled,
    bindings: Option<Result<Bindings, String>>,
    bindings_origin: Option<String>,
}

impl PolicySetBuilder {
    /// Adds a policy document from text. `name` is how bindings refer to it; `origin` (e.g.
    /// the file path) names it in errors.
    #[must_use]
    pub fn policy_text(mut self, name: &str, origin: &str, format: Format, text: &str) -> Self {
        let parsed: Result<serde_json::Value, String> = if text.len() > MAX_DOCUMENT_BYTES {
            Err(format!(
                "document is {} bytes, over the limit of {MAX_DOCUMENT_BYTES}",
                text.len()
            ))
        } else {
            crate::nesting::check_nesting(text, format)
                .and_then(|()| match format {
                    Format::Json => {
                        serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))
                    }
                    Format::Yaml => {
                        yaml_serde::from_str(text).map_err(|e| format!("invalid YAML: {e}"))
                    }
                })
                .and_then(|v| crate::nesting::check_value(&v).map(|()| v))
        };
        self.compiled
            .add(name, origin, parsed.as_ref().map_err(String::clone));
        self
    }

    /// Adds a JSON policy document.
    #[must_use]
    pub fn policy_json(self, name: &str, text: &str) -> Self {
        self.policy_text(name, name, Format::Json, text)
    }

    /// Adds a YAML policy document.
    #[must_use]
    pub fn policy_yaml(self, name: &str, text: &str) -> Self {
        self.policy_text(name, name, Format::Yaml, text)
    }

    /// Adds an already parsed policy document.
    #[must_use]
    pub fn policy_value(self, name: &str, document: serde_json::Value) -> Self {
        self.policy_document(name, &document)
    }

    /// Adds an already parsed policy document that the caller keeps.
    #[must_use]
    pub fn policy_document(mut self, name: &str, document: &serde_json::Value) -> Self {
        self.compiled.add(name, name, Ok(document));
        self
    }

    /// Sets the bindings.
    #[must_use]
    pub fn bindings(mut self, bindings: Bindings) -> Self {
        self.bindings = Some(Ok(bindings));
        self
    }

    /// Sets the bindings from YAML text (the `bindings.yaml` format); `origin` names it in errors.
    #[must_use]
    pub fn bindings_yaml(mut self, origin: &str, text: &str) -> Self {
        let parsed = if text.len() > MAX_DOCUMENT_BYTES {
            Err(format!(
                "document is {} bytes, over the limit of {MAX_DOCUMENT_BYTES}",
                text.len()
            ))
        } else if text.trim().is_empty() {
            Ok(Bindings::default())
        } else {
            crate::nesting::check_nesting(text, Format::Yaml).and_then(|()| {
                yaml_serde::from_str::<Bindings>(text).map_err(|e| format!("invalid bindings: {e}"))
            })
        };
        self.bindings = Some(parsed);
        self.bindings_origin = Some(origin.to_owned());
        self
    }

    /// Compiles everything added, reporting every problem.
    pub fn build(self) -> Result<PolicySet, CompileErrors> {
        crate::compile::finish(
            self.compiled,
            self.bindings.unwrap_or_else(|| Ok(Bindings::default())),
            self.bindings_origin
                .unwrap_or_else(|| BINDINGS_FILE.to_owned()),
        )
    }

    pub(crate) fn error(&mut self, e: CompileError) {
        self.compiled.errors.push(e);
    }

    pub(crate) fn has_bindings(&self) -> bool {
        self.bindings.is_some()
    }

    pub(crate) fn set_bindings_origin(&mut self, origin: String) {
        self.bindings_origin = Some(origin);
    }
}

impl PolicySet {
    /// Starts building a set from in-memory documents.
    pub fn builder() -> PolicySetBuilder {
        PolicySetBuilder::default()
    }
}
