//! `pdp-engine`: the pure policy engine of the PDP.
//!
//! Policies are AWS IAM policy documents (JSON or YAML) plus extensions (statement
//! `Obligations`, role bindings with permissions boundaries, guardrails, resource policies
//! attached by pattern). They are compiled once into an immutable [`PolicySet`], indexed by
//! attachment and action, and evaluated by [`PolicySet::decide`], which never fails: it
//! denies unless an allow applies.
//!
//! The engine does no network I/O and has no async runtime; the only file access is the
//! optional [`PolicySet::load_dir`] (and [`PolicySet::load_dir_with`]).
//!
//! ```
//! use pdp_engine::{Context, PolicySet, Request, Resource, Subject};
//!
//! let set = PolicySet::builder()
//!     .policy_yaml("home", r#"
//! Version: "2012-10-17"
//! Statement:
//!   - Sid: OwnFolder
//!     Effect: Allow
//!     Action: ["s3:GetObject", "s3:PutObject"]
//!     Resource: "arn:aws:s3:::home/${aws:username}/*"
//!     Condition: { Bool: { "aws:MultiFactorAuthPresent": "true" } }
//! "#)
//!     .bindings_yaml("bindings.yaml", "roles: { Employee: { policies: [home] } }")
//!     .build()?;
//! let mut request = Request {
//!     subject: Subject { id: "alice".into(), roles: vec!["Employee".into()].into(), ..Default::default() },
//!     action: "s3:PutObject".into(),
//!     resource: Resource { id: "arn:aws:s3:::home/alice/notes.txt".into(), ..Default::default() },
//!     context: Context::new().with("aws:MultiFactorAuthPresent", true),
//!     now: None,
//! };
//! assert!(set.decide(&request).allowed);
//! request.resource.id = "arn:aws:s3:::home/bob/notes.txt".into();
//! assert!(!set.decide(&request).allowed);
//! # Ok::<(), pdp_engine::CompileErrors>(())
//! ```

mod builder;
mod compile;
mod condition;
mod error;
mod eval;
mod explain;
mod keys;
pub mod lint;
mod load;
mod nesting;
mod obligation;
mod pattern;
mod plan;
mod request;
mod set;
pub mod testsuite;
mod types;

pub use builder::PolicySetBuilder;
pub use condition::operator_names;
pub use error::{CompileError, CompileErrors, LoadError};
pub use explain::{
    Attached, Explanation, HeldBack, Limit, Mismatch, NearMiss, MAX_NEAR_MISSES, MAX_VALUES,
    MAX_VALUE_BYTES,
};
pub use load::{contained_file, LoadOptions};
pub use nesting::{check_nesting, MAX_NESTING};
pub use plan::{Expr, Glob, GlobPart, IdTemplate, Plan, PlanRequest, TagTest};
pub use request::{
    Context, Request, Resource, Roles, RolesIntoIter, Scalar, Subject, Tags, TagsIter, Text, Value,
};
pub use set::{
    Attachment, Bindings, Format, PolicySet, ResourceAttachment, BINDINGS_FILE, MAX_DOCUMENT_BYTES,
    MAX_POLICIES, MAX_STATEMENTS,
};
pub use types::{Decision, Effect, Obligation, ObligationType, Reason, StatementInfo};
