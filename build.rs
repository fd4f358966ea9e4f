// The migrations are embedded in the binary (`embed_migrations!`); without this a new or
// edited migration directory would not rebuild it.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
