//! Every `lrt` command line in the README's `sh` blocks runs as written (issue 11): from the
//! repository root, with this build's `lrt` first on the `PATH`, each must exit 0. A README that
//! names a file that does not exist, or an option that is gone, fails here.

use std::path::Path;
use std::process::Command;

use lrt_engine::testing::repo_root;

/// The `lrt ...` lines of every ```sh block (continuation lines joined).
fn readme_commands() -> Vec<String> {
    let text = std::fs::read_to_string(repo_root().join("README.md")).expect("README.md");
    let mut commands = Vec::new();
    let mut in_sh = false;
    let mut pending = String::new();
    for line in text.lines() {
        let trimmed = line.trim_end();
        if trimmed.starts_with("```") {
            in_sh = trimmed == "```sh";
            pending.clear();
            continue;
        }
        if !in_sh {
            continue;
        }
        if let Some(head) = trimmed.strip_suffix('\\') {
            pending.push_str(head);
            continue;
        }
        pending.push_str(trimmed);
        let command = std::mem::take(&mut pending);
        if command.trim_start().starts_with("lrt ") {
            commands.push(command.trim().to_string());
        }
    }
    commands
}

#[test]
fn every_lrt_command_of_the_readme_runs_as_written() {
    let commands = readme_commands();
    assert!(
        commands.len() >= 10,
        "the README's CLI examples were not found: {commands:?}"
    );
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_lrt"))
        .parent()
        .expect("the binary's folder")
        .to_path_buf();
    let path = std::env::join_paths(std::iter::once(bin_dir).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))
    .expect("a PATH");
    let mut failures = Vec::new();
    for command in &commands {
        let output = Command::new("sh")
            .arg("-c")
            .arg(command)
            .current_dir(repo_root())
            .env("PATH", &path)
            .env_remove("LRT_RULES_DIR")
            .env_remove("LRT_CONFIG")
            .output()
            .expect("sh runs");
        if !output.status.success() {
            failures.push(format!(
                "{command}\n  exit {:?}: {}",
                output.status.code(),
                String::from_utf8_lossy(&output.stderr)
                    .lines()
                    .take(5)
                    .collect::<Vec<_>>()
                    .join("\n  ")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "README commands that fail:\n{}",
        failures.join("\n")
    );
}
