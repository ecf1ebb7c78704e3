//! The IO-free vocabulary of the rkube API: `Status` errors and field-level
//! causes, label and field selectors, name and metadata validation, and
//! accessors for `metadata` of objects held as `serde_json::Value`, and
//! resource quantities.
//!
//! Everything here reproduces upstream Kubernetes behaviour observable by
//! clients, down to the wording of messages, because kubectl and client
//! libraries show those messages to people and branch on the reasons. This
//! crate owns no schemas, storage or HTTP; those live in `schema`, `store`
//! and `apiserver`.

pub mod json;
pub mod meta;
pub mod quantity;
pub mod quota;
pub mod selector;
pub mod status;
pub mod validation;

pub use selector::{FieldSelector, LabelSelector};
pub use status::*;
