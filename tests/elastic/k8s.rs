//! The Kubernetes example (`examples/k8s/herd-workers.yaml`) is well-formed where no cluster
//! runs: checked by a minimal reader of its YAML subset (indentation, `key: value`, `- item`)
//! and, where Python's `yaml` module is installed, parsed by it too.

use super::*;

fn manifest() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/k8s/herd-workers.yaml")
}

/// The value of the first `key:` line (trimmed, quotes removed), if any.
fn value<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines()
        .map(str::trim_start)
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .map(|v| v.trim().trim_matches('"'))
}

#[test]
fn the_kubernetes_indexed_job_is_well_formed_and_runs_slotless_replicas() {
    let text = std::fs::read_to_string(manifest()).unwrap();
    for (n, line) in text.lines().enumerate() {
        let content = line.trim_start();
        if content.is_empty() || content.starts_with('#') {
            continue;
        }
        let indent = line.len() - content.len();
        assert!(!line.contains('\t'), "line {}: a tab", n + 1);
        assert_eq!(indent % 2, 0, "line {}: odd indentation", n + 1);
        let item = content.strip_prefix("- ").unwrap_or(content);
        assert!(
            item.contains(": ") || item.ends_with(':') || content.starts_with("- "),
            "line {}: neither `key: value` nor `- item`: {line}",
            n + 1
        );
    }
    assert_eq!(value(&text, "apiVersion"), Some("batch/v1"));
    assert_eq!(value(&text, "kind"), Some("Job"));
    assert_eq!(value(&text, "completionMode"), Some("Indexed"));
    assert_eq!(value(&text, "completions"), value(&text, "parallelism"));
    assert_eq!(value(&text, "restartPolicy"), Some("Never"));
    // The replica's command is `herd worker --connect URL --token-file F`: no slot, no test
    // command (the coordinator gives both), the token from the mounted Secret.
    let command: Vec<&str> = text
        .lines()
        .skip_while(|l| l.trim() != "command:")
        .skip(1)
        .map_while(|l| l.trim().strip_prefix("- "))
        .collect();
    assert_eq!(
        &command[..3],
        ["herd", "worker", "--connect"],
        "{command:?}"
    );
    assert!(!command.contains(&"--worker") && !command.contains(&"--"));
    let token = command.iter().position(|w| *w == "--token-file").unwrap();
    let mount = value(&text, "mountPath").unwrap();
    assert!(command[token + 1].starts_with(mount), "{command:?}");
    assert_eq!(value(&text, "secretName"), Some("herd-token"));
    python_yaml_agrees(&text);
}

/// Parses the manifest with Python's `yaml` where it is installed (system or `.venv` Python).
fn python_yaml_agrees(text: &str) {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    let script = "import sys, yaml\n\
                  job = yaml.safe_load(sys.stdin)\n\
                  spec = job['spec']\n\
                  pod = spec['template']['spec']\n\
                  c = pod['containers'][0]\n\
                  assert job['kind'] == 'Job' and spec['completionMode'] == 'Indexed', job\n\
                  assert c['command'][:2] == ['herd', 'worker'], c\n\
                  assert pod['volumes'][0]['secret']['secretName'] == 'herd-token'\n\
                  print('yaml ok')\n";
    for python in [venv.as_path(), Path::new("python3")] {
        let has_yaml = Command::new(python)
            .args(["-c", "import yaml"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !has_yaml {
            continue;
        }
        let mut child = Command::new(python)
            .args(["-c", script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        return;
    }
    println!("(python's yaml module is not installed: the minimal check alone)");
}
