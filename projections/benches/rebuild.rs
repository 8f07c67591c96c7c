// Placeholder so the manifest parses while the rebuild bench is being written.
fn main() {}
