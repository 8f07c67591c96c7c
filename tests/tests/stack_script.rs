//! `infra/local/stack.sh`: idempotent start, and a stop that stops only its own stack; the
//! verifiable logs' signing key it creates once.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use casebook_domain::ids::TenantId;
use casebook_projections::tlog::{checkpoint, tree, LogKey, LogName};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn stack(cache: &Path, verb: &str) -> (bool, String) {
    let output = Command::new("bash")
        .arg(repo_root().join("infra/local/stack.sh"))
        .arg(verb)
        .env("CASEBOOK_CACHE", cache)
        // Reuse the running stack's emulator install instead of a fresh pip install.
        .env(
            "CASEBOOK_VENV",
            Path::new(&std::env::var("CASEBOOK_CACHE").expect("run under the local stack"))
                .join("venv"),
        )
        .output()
        .expect("run stack.sh");
    (
        output.status.success(),
        String::from_utf8(output.stdout).expect("utf-8 exports"),
    )
}

fn exports(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|line| line.strip_prefix("export "))
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn pids(cache: &Path) -> (String, String) {
    let postmaster = std::fs::read_to_string(cache.join("pg/data/postmaster.pid"))
        .expect("postgres running")
        .lines()
        .next()
        .unwrap()
        .to_string();
    let moto = std::fs::read_to_string(cache.join("moto.pid"))
        .expect("moto running")
        .trim()
        .to_string();
    (postmaster, moto)
}

fn answers(url: &str) -> bool {
    Command::new("psql")
        .args([url, "-Atc", "select 1"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

#[test]
fn the_stack_starts_once_and_stops_only_what_it_started() {
    let cache = std::env::temp_dir().join(format!("casebook-stack-{}", uuid::Uuid::new_v4()));
    let main_stack = std::env::var("CASEBOOK_PG_ADMIN_URL").expect("run under the local stack");

    let (ok, first) = stack(&cache, "up");
    assert!(ok, "first up");
    let first_env = exports(&first);
    let first_pids = pids(&cache);
    assert!(answers(&first_env["CASEBOOK_PG_ADMIN_URL"]));
    assert_ne!(first_env["CASEBOOK_PG_ADMIN_URL"], main_stack);

    let key_file = Path::new(&first_env["CASEBOOK_LOG_KEY_FILE"]);
    let private = std::fs::read_to_string(key_file).expect("the log key");
    let verifier = std::fs::read_to_string(cache.join("log.pub")).expect("its verifier key");
    let key = LogKey::from_private(&private).expect("a signed-note private key");
    let tenant = TenantId::from_uuid(uuid::Uuid::new_v4());
    let note = key
        .sign(LogName::Audit, tenant, 1, tree::leaf_hash(b"row"))
        .unwrap();
    let origin = checkpoint::origin("casebook.local", LogName::Audit, tenant);
    checkpoint::open(&note, &verifier, &origin).expect("the verifier key opens its checkpoints");
    let vault_key_file = Path::new(&first_env["CASEBOOK_VAULT_KEY_FILE"]);
    let vault_key = std::fs::read_to_string(vault_key_file).expect("the vault key");
    casebook_vault::root::LocalRootKey::from_file(vault_key_file).expect("a 32-byte root key");

    let (ok, second) = stack(&cache, "up");
    assert!(ok, "second up");
    assert_eq!(exports(&second), first_env, "same ports, same exports");
    assert_eq!(pids(&cache), first_pids, "nothing restarted");
    assert_eq!(
        std::fs::read_to_string(key_file).unwrap(),
        private,
        "the same key"
    );
    assert_eq!(
        std::fs::read_to_string(vault_key_file).unwrap(),
        vault_key,
        "the same vault key: a new one would leave every sealed value unreadable"
    );

    let (ok, _) = stack(&cache, "down");
    assert!(ok, "down");
    assert!(
        !answers(&first_env["CASEBOOK_PG_ADMIN_URL"]),
        "its Postgres stopped"
    );
    assert!(
        !Path::new(&format!("/proc/{}", first_pids.1)).exists(),
        "its emulator stopped"
    );
    assert!(answers(&main_stack), "the other stack still runs");

    std::fs::remove_dir_all(&cache).ok();
}
