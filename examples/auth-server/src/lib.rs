//! # auth-server (under construction)
