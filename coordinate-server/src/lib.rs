//! # coordinate-server (under construction)
