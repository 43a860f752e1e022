//! A third-party client the project does not otherwise use, the official Python
//! `kubernetes` client, drives the emulator (`tests/python/client_suite.py`): the next
//! divergence from a real API server is then caught by someone else's client, not only
//! by kube-rs and kubectl. The client is installed into the repository's `.venv` by
//! `scripts/test` (`scripts/requirements-test.txt`).

use std::path::PathBuf;

use kube_emulator::Emulator;

fn python() -> PathBuf {
    let python = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/test once (it installs the Python kubernetes client into .venv)",
        python.display()
    );
    python
}

#[tokio::test]
async fn the_official_python_client_works_against_the_emulator() {
    let emulator = Emulator::start().await.expect("emulator");
    let dir = std::env::temp_dir().join(format!("kube-emulator-python-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("directory");
    let kubeconfig = dir.join("kubeconfig");
    emulator.write_kubeconfig(&kubeconfig).expect("kubeconfig");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/client_suite.py");
    let out = tokio::process::Command::new(python())
        .arg(&script)
        .arg(&kubeconfig)
        .env("HOME", &dir)
        .output()
        .await
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the Python client suite failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.starts_with("ok: "), "{stdout}");
    drop(emulator);
    let _ = std::fs::remove_dir_all(&dir);
}
