//! # keycafe-client
