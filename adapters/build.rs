// `sqlx::migrate!` embeds the migrations at compile time, but cargo only rebuilds this crate
// when its own sources change: a new migration file would otherwise be missing from the
// binaries until some unrelated edit.
fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
