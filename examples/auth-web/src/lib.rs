//! # auth-web (under construction)
