// Rebuild (and so re-embed the SQL) whenever a queue migration is added or changed.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
