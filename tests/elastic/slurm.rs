//! A real cluster engine: a one-node Slurm cluster (`scripts/slurm-up`: Debian's slurmctld,
//! slurmd and munge on localhost) runs herd's workers through `srun` (a launcher template) and
//! through a job array of identical replicas (`sbatch --array`). Where Slurm cannot be installed
//! or started (no root, no package mirror) the test says SKIPPED and passes.

use super::*;

/// Brings the cluster up (quick when it is up already); why not, if it cannot.
fn slurm_up() -> Result<(), String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/slurm-up");
    let out = Command::new(&script)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    if out.status.success() {
        return Ok(());
    }
    Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
}

#[test]
fn slurm_runs_herd_workers_through_srun_and_a_job_array() {
    if let Err(why) = slurm_up() {
        println!("SKIPPED: no Slurm cluster: {why}");
        return;
    }
    through_srun();
    through_a_job_array();
}

/// `--launcher 'srun ... {cmd}'`: herd supervises each `srun`, Slurm runs the worker.
fn through_srun() {
    let suite = sleepy(12, "0.05");
    let run = suite.run(&[
        "-n",
        "2",
        "--listen",
        "tcp://127.0.0.1:0",
        "--launcher",
        "srun --ntasks=1 --quiet --job-name=herd-{worker} {cmd}",
    ]);
    assert_eq!(run.code, 0, "{}", run.dump());
    assert_eq!(run.count("passed"), 12, "{}", run.dump());
    assert_eq!(per_worker(&run).len(), 2, "{}", run.dump());
}

/// `herd run --launcher external` and `sbatch --array=1-3` of the same one-line replica.
fn through_a_job_array() {
    let suite = sleepy(24, "0.05");
    let herd = coordinator(&suite, &["-n", "3", "--min-workers", "3"]);
    let endpoint = endpoint(&suite);
    let herd_bin = env!("CARGO_BIN_EXE_herd");
    let token = suite.path().join("token");
    let wrap = format!(
        "{herd_bin} worker --connect {endpoint} --token-file {}",
        token.display()
    );
    let out = Command::new("sbatch")
        .args(["--array=1-3", "--job-name=herd-replicas", "--parsable"])
        .arg(format!(
            "--output={}/replica-%a.out",
            suite.path().display()
        ))
        .arg(format!("--chdir={}", suite.path().display()))
        .arg(format!("--wrap={wrap}"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "sbatch: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let job = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let run = Run::wait(herd, &suite.events_path());
    let replicas: String = (1..=3)
        .map(|i| {
            let path = suite.path().join(format!("replica-{i}.out"));
            std::fs::read_to_string(path).unwrap_or_default()
        })
        .collect();
    let _ = Command::new("scancel").arg(&job).status();
    assert_eq!(run.code, 0, "{}\n{replicas}", run.dump());
    assert_eq!(run.count("passed"), 24, "{}", run.dump());
    assert_eq!(per_worker(&run).len(), 3, "{}\n{replicas}", run.dump());
    assert!(
        run.stdout.contains("herd: 3 workers took part"),
        "{}",
        run.dump()
    );
}
