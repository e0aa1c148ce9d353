//! What every request passes before a handler, on both transports (they
//! share one listener, so these layers wrap both at once):
//! - [`admission`]: load shedding, then API keys and scopes;
//! - [`auth`]: the keys, their scopes, and which route needs which scope.

pub mod admission;
pub mod auth;
