//! How an incarnation is launched (its environment, awaited or started), its log and status
//! file, its exit fed to the brain, and the hooks (appliance check, cleanse) and the
//! Supervisor's respawn grant the brain asks for.

use super::*;

impl Worker {
    /// Launches incarnation `incarnation`, which the brain has just begun: nothing of the last
    /// process is kept (its group is killed, its log closed).
    pub(super) fn launch(&mut self, ctx: &mut Context<Self>, incarnation: u32) {
        self.group = None;
        self.log = None;
        let env = self.spawn_env(incarnation);
        let launched = match self
            .settings
            .launcher
            .launch(&self.settings.command, &self.slot, &env)
        {
            Launch::Spawn(command) => command,
            Launch::Await(command) => return self.input(ctx, Input::Awaiting(command)),
        };
        match self.zygote() {
            Some(zygote) => self.fork_from(ctx, zygote, env, launched),
            None => self.spawn_plain(ctx, launched),
        }
    }

    /// The environment of a new incarnation: who it is, where to connect, its token, its
    /// status file, the faults a `--chaos` plan armed it with and, for pytest, the
    /// `PYTEST_XDIST_*` variables of xdist's worker contract.
    fn spawn_env(&mut self, incarnation: u32) -> Vec<(String, String)> {
        let mut env = self.hook_env();
        env.push((
            protocol::ENV_ENDPOINT.into(),
            self.settings.endpoint.clone(),
        ));
        env.push((
            protocol::ENV_TOKEN.into(),
            self.settings.token.as_str().to_string(),
        ));
        env.push((protocol::ENV_INCARNATION.into(), incarnation.to_string()));
        if let Some(value) = self.brain.fault_env() {
            env.push(("HERD_WORKER_FAULT".into(), value));
        }
        if let Some(path) = self.status_path() {
            let _ = std::fs::remove_file(&path);
            env.push((protocol::ENV_STATUS_FILE.into(), path.display().to_string()));
        }
        if let Some(xdist) = &self.settings.xdist {
            env.extend(xdist.env(&self.slot.id));
        }
        env
    }

    pub(super) fn open_log(&mut self, pid: u32) {
        let Some(dir) = &self.settings.log_dir else {
            return;
        };
        if self.log.is_none() {
            let path = dir.join(format!("{}.log", self.slot.id));
            let file = std::fs::create_dir_all(dir).and_then(|_| File::create(&path));
            let reporter = self.peers.reporter.clone().recipient();
            self.log = Some(WorkerLog::new(path, file, reporter));
        }
        let (slot, incarnation) = (&self.slot.id, self.brain.incarnation());
        if let Some(log) = &mut self.log {
            let _ = writeln!(log, "=== {slot} incarnation {incarnation} (pid {pid}) ===");
        }
    }

    fn status_path(&self) -> Option<PathBuf> {
        let dir = self.settings.status_dir.as_ref()?;
        let identity = protocol::identity(&self.slot.id, self.incarnation());
        Some(dir.join(format!("{identity}.status")))
    }

    /// The test the process last said (in its status file) it was starting.
    fn last_started(&self) -> Option<TestId> {
        // The first line: a worker may overwrite a longer id without truncating the file.
        let text = std::fs::read_to_string(self.status_path()?).ok()?;
        let test = text.lines().next()?;
        (!test.is_empty()).then(|| test.to_string())
    }

    /// The process of `incarnation` exited: what it left in its group is killed, and the
    /// brain told.
    pub(super) fn process_gone(
        &mut self,
        ctx: &mut Context<Self>,
        incarnation: u32,
        status: std::io::Result<ExitStatus>,
    ) {
        if incarnation != self.incarnation() {
            return;
        }
        self.group.take();
        let (code, status) = match status {
            Ok(status) => (status.code(), describe_status(&status)),
            Err(e) => (None, format!("unknown status ({e})")),
        };
        let exited = Input::Exited {
            incarnation,
            code,
            status,
        };
        self.input(ctx, exited);
    }

    /// Runs the appliance check before a respawn; its result goes to the brain.
    pub(super) fn appliance_check(&mut self, ctx: &mut Context<Self>) {
        let Some(check) = self.settings.appliance_check.clone() else {
            return self.input(ctx, Input::ApplianceChecked(None));
        };
        let hook = run_hook(check, self.hook_env(), self.settings.hook_timeout);
        ctx.spawn(hook.into_actor(self).map(move |result, act, ctx| {
            let failed = (!result.ok).then_some(result.summary);
            act.input(ctx, Input::ApplianceChecked(failed));
        }));
    }

    /// Asks the Supervisor for a respawn; its answer goes to the brain.
    pub(super) fn request_respawn(&mut self, ctx: &mut Context<Self>, counted: bool) {
        let ask = self.peers.supervisor.send(RequestRespawn {
            worker: self.id(),
            counted,
        });
        ctx.spawn(ask.into_actor(self).map(|granted, act, ctx| {
            act.input(ctx, Input::RespawnGranted(granted.unwrap_or(false)));
        }));
    }

    /// Runs the cleanse before a provider switch; the tests are delivered after it.
    pub(super) fn cleanse(
        &mut self,
        ctx: &mut Context<Self>,
        incarnation: u32,
        tests: Vec<TestId>,
        switch: (String, String),
    ) {
        let Some(cleanse) = self.settings.cleanse.clone() else {
            let failed = None;
            let cleansed = Input::Cleansed {
                incarnation,
                tests,
                switch,
                failed,
            };
            return self.input(ctx, cleansed);
        };
        let mut env = self.hook_env();
        env.push(("HERD_PROVIDER_FROM".into(), switch.0.clone()));
        env.push(("HERD_PROVIDER_TO".into(), switch.1.clone()));
        let hook = run_hook(cleanse, env, self.settings.hook_timeout);
        ctx.spawn(hook.into_actor(self).map(move |result, act, ctx| {
            let failed = (!result.ok).then_some(result.summary);
            let cleansed = Input::Cleansed {
                incarnation,
                tests,
                switch,
                failed,
            };
            act.input(ctx, cleansed);
        }));
    }
}

impl Handler<BarrierReached> for Worker {
    type Result = ();

    fn handle(&mut self, msg: BarrierReached, ctx: &mut Self::Context) {
        let incarnation = msg.incarnation;
        let current = incarnation == self.incarnation();
        let last_started = current.then(|| self.last_started()).flatten();
        let reached = Input::BarrierReached {
            incarnation,
            last_started,
        };
        self.input(ctx, reached);
    }
}

/// Session messages that are brain inputs as they are.
macro_rules! plain_input {
    ($($message:ident => $input:expr),* $(,)?) => {$(
        impl Handler<$message> for Worker {
            type Result = ();

            fn handle(&mut self, _: $message, ctx: &mut Self::Context) {
                self.input(ctx, $input);
            }
        }
    )*};
}

plain_input! {
    Revive => Input::Revive,
    NoMoreWork => Input::NoMoreWork,
    KillNow => Input::KillNow,
    Recollect => Input::Recollect,
    Drain => Input::Drain,
}
