// Rebuild (and so re-embed the SQL) whenever a migration file is added or changed.
fn main() {
    println!("cargo:rerun-if-changed=.");
}
