//! `sqlx::migrate!` embeds `migrations/` at compile time; rebuild when it
//! changes, or a new migration would silently not ship.
fn main() {
    println!("cargo::rerun-if-changed=../../migrations");
}
