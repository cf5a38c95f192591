//! Errors of each stage: compiling a policy set (every problem, each with its location) and
//! loading one from a directory.

use std::fmt;

/// One problem found while compiling a policy set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileError {
    /// The file (or in-memory source name) the problem is in.
    pub file: String,
    /// Zero-based statement index, when the problem is in a statement.
    pub statement: Option<usize>,
    /// The statement's `Sid`, when it has one.
    pub sid: Option<String>,
    /// The element or field, e.g. `Condition.NumericLessThan.aws:MultiFactorAuthAge`.
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for CompileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(i) = self.statement {
            write!(f, ": statement {i}")?;
            if let Some(sid) = &self.sid {
                write!(f, " (Sid `{sid}`)")?;
            }
        }
        if let Some(field) = &self.field {
            write!(f, ": {field}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Every problem in a rejected policy set (never empty).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct CompileErrors(pub Vec<CompileError>);

impl fmt::Display for CompileErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        write!(
            f,
            "policy set rejected: {n} problem{}",
            if n == 1 { "" } else { "s" }
        )?;
        for e in &self.0 {
            write!(f, "\n  {e}")?;
        }
        Ok(())
    }
}

/// Loading a policy set from a directory failed.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The directory or a file in it could not be read.
    #[error("cannot read `{path}`: {source}")]
    Io {
        /// The path.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The documents were read but do not form a valid set.
    #[error(transparent)]
    Compile(#[from] CompileErrors),
}
