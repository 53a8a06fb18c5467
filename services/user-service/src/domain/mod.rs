//! Validated values: request input becomes these once, at the boundary.

mod email;
mod user;
mod user_name;

pub use email::Email;
pub use user::{User, UserDraft};
pub use user_name::UserName;

/// Why an input value was rejected; the message is shown to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidInput(pub String);
